"""The agent's data folder: where the key, vault, database and settings live."""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.keys import write_private_file
from shared.signing import key_id_for
from village_agent.errors import NotInitializedError

if TYPE_CHECKING:
    from shared.relay.tls import ClientTls

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

    @property
    def unlock_pin(self) -> Path:
        """The UI's unlock PIN verifier (`village_agent.ui.unlock.UnlockPin`); absent until a PIN is set."""
        return self.root / "unlock.pin"


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
    # TLS to the township: the CA its certificate chains to, kept inline (public, and it must
    # survive the USB stick it came on); empty means plain text. The name overrides the host
    # dialled when the certificate carries another one.
    township_ca_pem: str = ""
    township_tls_name: str = ""

    @property
    def township_public_key(self) -> bytes:
        return base64.b64decode(self.township_public_key_b64)

    @property
    def township_key_id(self) -> str:
        return key_id_for(self.township_public_key)

    def township_tls(self) -> ClientTls | None:
        """The checked TLS settings for syncing, or None (plain text); raises `TlsConfigError`."""
        if not self.township_ca_pem:
            return None
        from shared.relay.tls import ClientTls  # grpc and x509 only for the commands that sync

        return ClientTls.from_pem(self.township_ca_pem, server_name=self.township_tls_name, source="乡镇 CA 证书（本机配置）")

    def save(self, paths: Paths) -> None:
        doc = {"format": CONFIG_FORMAT, **asdict(self)}
        write_private_file(paths.config, (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))

    @classmethod
    def load(cls, paths: Paths) -> AgentConfig:
        try:
            doc = json.loads(paths.config.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotInitializedError(f"数据目录 {paths.root} 尚未初始化，请先运行 village-agent init") from exc
        doc.pop("format", None)
        return cls(**doc)
