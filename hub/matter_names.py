"""How the county names a matter in notices (`shared.deadline_watch.notify.MatterNames`): the catalogue
item's name and the township that reported or tracks it (by the name its link key was enrolled under)."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from hub.store.tables import county_matter, township_key, tracked_matter
from shared.deadline_watch.notify import MatterName
from shared.domain.catalog import Catalog

__all__ = ["CountyMatterNames"]


class CountyMatterNames:
    def __init__(self, engine: Engine, catalog: Callable[[], Catalog]) -> None:
        self.engine = engine
        self.catalog = catalog   # read at each call: a newly published catalogue names matters at once

    def matter_name(self, matter_id: str) -> MatterName | None:
        with self.engine.connect() as conn:
            row = None
            for table in (county_matter, tracked_matter):
                row = conn.execute(
                    select(table.c.catalog_code, township_key.c.holder_name)
                    .select_from(table.outerjoin(township_key, township_key.c.key_id == table.c.township_key_id))
                    .where(table.c.matter_id == matter_id)).first()
                if row is not None:
                    break
        if row is None:
            return None
        catalog = self.catalog()
        title = catalog.item(row.catalog_code).name if row.catalog_code in catalog else "目录中已无此事项"
        return MatterName(title, row.holder_name)
