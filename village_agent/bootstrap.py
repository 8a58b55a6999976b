"""Wires a village agent together from its data folder: the only place that knows every part."""
from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

from shared.catalog import load_catalog
from shared.clock import Clock, SystemClock, to_unix_ms
from shared.keys import check_passphrase, fingerprint, load_key_file, save_key_file
from shared.relay.tls import check_ca_pem
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from village_agent.config import AgentConfig, Paths
from village_agent.errors import AlreadyInitializedError, FieldProblem, FormError, NotInitializedError
from village_agent.services import AgentService
from village_agent.store import AgentStore
from village_agent.vault import Vault

log = logging.getLogger(__name__)


def init_agent(
    root: Path,
    passphrase: str,
    *,
    agent_name: str,
    village_code: str,
    village_name: str,
    township_code: str,
    township_name: str,
    township_address: str,
    township_public_key: bytes,
    scrypt_n: int | None = None,
    clock: Clock | None = None,
    township_ca_pem: str = "",
    township_tls_name: str = "",
) -> tuple[AgentConfig, Signer]:
    """Create the device key, the vault, the database and the settings in `root`. With
    `township_ca_pem` (the CA the township's certificate chains to) the laptop syncs over TLS."""
    paths = Paths(root)
    if paths.key.exists() or paths.config.exists():
        raise AlreadyInitializedError(f"数据目录 {root} 已经初始化过，不会覆盖已有密钥")
    problems = []
    for field, label, value in (("agent_name", "代办员姓名", agent_name), ("village_code", "村代码", village_code),
                                ("village_name", "村名称", village_name), ("township_code", "乡镇代码", township_code),
                                ("township_name", "乡镇名称", township_name), ("township_address", "乡镇中心地址", township_address)):
        if not value.strip():
            problems.append(FieldProblem(field, label, f"请填写{label}"))
    if len(township_public_key) != 32:
        problems.append(FieldProblem("township_key", "乡镇中心登记码", "登记码无效"))
    if problems:
        raise FormError(problems)
    if township_ca_pem:   # checked before anything is written
        township_ca_pem = check_ca_pem(township_ca_pem.encode("utf-8"), "乡镇 CA 证书").decode("ascii")
    check_passphrase(passphrase)
    clock = clock or SystemClock()
    root.mkdir(parents=True, exist_ok=True)
    signer = Signer.generate()
    catalog = load_catalog()
    config = AgentConfig(
        agent_name=agent_name.strip(), village_code=village_code.strip(), village_name=village_name.strip(),
        township_code=township_code.strip(), township_name=township_name.strip(),
        township_address=township_address.strip(),
        township_public_key_b64=base64.b64encode(township_public_key).decode("ascii"),
        catalog_version=catalog.version,
        township_ca_pem=township_ca_pem, township_tls_name=township_tls_name.strip(),
    )
    kwargs = {} if scrypt_n is None else {"scrypt_n": scrypt_n}
    save_key_file(paths.key, signer, passphrase, **kwargs)
    Vault.create(paths.vault, signer)
    store = AgentStore(paths.database)
    store.set_meta("key_id", signer.key_id)
    # seq 1 of every device chain is its self-signed enrollment request (see records.proto).
    store.append(signer, enrollment_record(signer, config), to_unix_ms(clock.now()), queued_at_ms=to_unix_ms(clock.now()))
    store.close()
    config.save(paths)
    return config, signer


def enrollment_record(signer: Signer, config: AgentConfig) -> records_pb2.Record:
    record = records_pb2.Record()
    body = record.key_enrollment_requested
    body.public_key = signer.public_key
    body.role = records_pb2.KEY_ROLE_VILLAGE_AGENT
    body.holder_name = config.agent_name
    body.village_code = config.village_code
    body.township_code = config.township_code
    body.fingerprint = fingerprint(signer.public_key)
    return record


def configure_logging(paths: Paths) -> None:
    """A rotating log beside the database. Only ids, kinds and counts are ever logged: no names,
    ID numbers, phones or addresses (the privacy test scans this file)."""
    import logging.handlers

    from shared.observability.logs import PersonalDataFilter

    root_logger = logging.getLogger("village_agent")
    log_file = os.path.abspath(paths.log)   # as FileHandler keeps it in `baseFilename`
    if any(isinstance(h, logging.FileHandler) and h.baseFilename == log_file for h in root_logger.handlers):
        return
    handler = logging.handlers.RotatingFileHandler(paths.log, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    # Second line of defence behind "never log personal data": anything shaped like an ID or phone is masked.
    handler.addFilter(PersonalDataFilter())
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)


def open_agent(root: Path, passphrase: str, clock: Clock | None = None) -> AgentService:
    paths = Paths(root)
    if not paths.config.exists() or not paths.key.exists():
        raise NotInitializedError(f"数据目录 {root} 尚未初始化，请先运行 village-agent init")
    config = AgentConfig.load(paths)
    signer = load_key_file(paths.key, passphrase)
    vault = Vault.open(paths.vault, signer)
    configure_logging(paths)
    store = AgentStore(paths.database)
    if store.get_meta("key_id") != signer.key_id:
        store.close()
        raise NotInitializedError("数据库与本设备密钥不匹配")
    return AgentService(store=store, signer=signer, vault=vault, catalog=store.published_catalog() or load_catalog(), config=config,
                        clock=clock or SystemClock())
