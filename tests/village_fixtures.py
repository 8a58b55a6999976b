"""Builders for real village agent data folders and valid request parameters."""
from __future__ import annotations

import base64
import random
import re
from pathlib import Path
from typing import Any

from shared.catalog import load_catalog
from shared.domain.id_number import with_check_char
from shared.signing import Signer
from tests.unit.test_village_signature import signature_png
from village_agent.bootstrap import init_agent

PASSPHRASE = "test-passphrase-1"
# A 1×1 image: what a careless script would send; refused wherever a villager's mark is needed.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
# A villager's signature as the pad produces it (560×180, a stroke across).
SIGNATURE_PNG = signature_png()
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
GIVEN = "桂兰秀英建国志强春梅玉珍德福淑芬国华丽娟永红海燕"


def make_agent(root: Path, township: Signer | None = None) -> Signer:
    township = township or Signer.generate()
    init_agent(root, PASSPHRASE, agent_name="王芳", village_code="V001", village_name="东山村", township_code="T01",
               township_name="青石镇", township_address="127.0.0.1:1", township_public_key=township.public_key,
               scrypt_n=2**14)
    return township


def unlock_ui(client: Any, secret: str = PASSPHRASE) -> None:
    """Unlock the village UI for `client` (a TestClient or an httpx.Client keeping cookies): every page
    but the unlock page answers only after the agent's passphrase (or PIN) has been typed there."""
    form = client.get("/unlock")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None, f"no unlock form: HTTP {form.status_code}"
    done = client.post("/unlock", data={"csrf_token": token.group(1), "secret": secret, "next": "/"},
                       follow_redirects=False)
    assert done.status_code == 303, f"unlock refused: HTTP {done.status_code}"


def unlock_page(page: Any, base_url: str, secret: str = PASSPHRASE) -> None:
    """Unlock the village UI in a Playwright page (the browser keeps the unlock cookie)."""
    page.goto(f"{base_url}/unlock")
    page.fill("#secret", secret)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def villager(rng: random.Random) -> dict[str, str]:
    region = rng.choice(["430524", "110105", "330102", "510104"])
    born = f"{rng.randint(1930, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    name = rng.choice(SURNAMES) + rng.choice(GIVEN[::2]) + rng.choice(GIVEN[1::2])
    return {"name": name, "id_number": with_check_char(f"{region}{born}{rng.randint(0, 999):03d}"),
            "phone": f"139{rng.randint(0, 99999999):08d}", "address": f"东山村{rng.randint(1, 9)}组{rng.randint(1, 80)}号"}


# A filing signs the request and its four documents (代办服务申请表, 代理服务委托书, 代办收件回执, 一次性告知书).
RECORDS_PER_FILING = 5


def request_params(rng: random.Random) -> dict[str, Any]:
    catalog = load_catalog()
    item = rng.choice(list(catalog))
    return dict(villager(rng), action="request", matter=item.code, materials=[m.id for m in item.main_materials],
                commitments={m.id: "2026-12-20" for m in item.auxiliary_materials},
                authorization="drawn_signature", evidence_b64=base64.b64encode(SIGNATURE_PNG).decode())
