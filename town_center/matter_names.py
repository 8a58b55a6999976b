"""How the township names a matter in notices (`shared.deadline_watch.notify.MatterNames`): the catalogue
item's name and the village agent who filed it. The lookup code is not known here (the township holds
only its hash), so staff find the matter by title and agent, as on the inbox page."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from shared.deadline_watch.notify import MatterName
from shared.domain.catalog import Catalog
from town_center.store.matter_tables import town_matter
from town_center.store.tables import agent_key

__all__ = ["TownMatterNames"]


class TownMatterNames:
    def __init__(self, engine: Engine, catalog: Callable[[], Catalog]) -> None:
        self.engine = engine
        self.catalog = catalog   # read at each call: a newly published catalogue names matters at once

    def matter_name(self, matter_id: str) -> MatterName | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(town_matter.c.catalog_code, agent_key.c.holder_name)
                .select_from(town_matter.outerjoin(agent_key, agent_key.c.key_id == town_matter.c.author_key_id))
                .where(town_matter.c.matter_id == matter_id)).first()
        if row is None:
            return None
        catalog = self.catalog()
        title = catalog.item(row.catalog_code).name if row.catalog_code in catalog else "目录中已无此事项"
        return MatterName(title, f"代办员{row.holder_name}报送" if row.holder_name else "")
