"""The agent's data folder: where the key, vault, database and settings live."""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.keys import write_private_file
from shared.signing import key_id_for
from village_agent.errors import NotInitializedError

CONFIG_FORMAT = "quancheng-village-agent/1"


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "agent.json"

    @property
    def key(self) -> Path:
        return self.root / "device.key"

    @property
    def vault(self) -> Path:
        return self.root / "vault.key"

    @property
    def database(self) -> Path:
        return self.root / "agent.db"

    @property
    def log(self) -> Path:
        return self.root / "agent.log"


@dataclass(frozen=True)
class AgentConfig:
    agent_name: str
    village_code: str
    village_name: str
    township_code: str
    township_name: str
    township_address: str          # host:port of the township's gRPC relay
    township_public_key_b64: str   # Ed25519, from the township's enrollment code
    catalog_version: str = ""

    @property
    def township_public_key(self) -> bytes:
        return base64.b64decode(self.township_public_key_b64)

    @property
    def township_key_id(self) -> str:
        return key_id_for(self.township_public_key)

    def save(self, paths: Paths) -> None:
        doc = {"format": CONFIG_FORMAT, **asdict(self)}
        write_private_file(paths.config, (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))

    @classmethod
    def load(cls, paths: Paths) -> "AgentConfig":
        try:
            doc = json.loads(paths.config.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotInitializedError(f"数据目录 {paths.root} 尚未初始化，请先运行 village-agent init") from exc
        doc.pop("format", None)
        return cls(**doc)
