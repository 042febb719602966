"""CSV import reads commas, semicolons (European Excel) and tabs (issue 21, "Audiences").

Real files, imported through the API (SQLite and PostgreSQL) and the CLI as a process; each
file's quoted cells hold the other delimiters, which must stay inside their cell. The job
reports created, updated and refused rows separately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from factories import SIM_TOKEN, connected_page, import_contacts
from pagecast.db import Database
from pagecast.models import Role
from pagecast.security import Vault
from pagecast.services.contact_import import detect_delimiter
from test_cli import data_dir, migrated_dir, run  # noqa: F401 (fixtures of the CLI's tests)

# One file, written with each delimiter: the name holds the two others, and the tags cell
# (tags are separated by `;` whatever the file's delimiter) is quoted where it must be.
ROWS = [
    ["psid", "first_name", "last_name", "tags"],
    ["101", "Ana", "Lopez, Jr; \t", "vip;new"],
    ["102", "Ben", "Okafor", "vip"],
    ["not-a-psid", "Bad", "Row", ""],
]


def _cell(value: str) -> str:
    return f'"{value}"' if any(c in value for c in ',;\t"') else value


def csv_text(delimiter: str, rows: list[list[str]] = ROWS) -> str:
    return "".join(delimiter.join(_cell(v) for v in row) + "\r\n" for row in rows)


async def _contacts(client: httpx.AsyncClient, page_id: int) -> dict[str, Any]:
    answer = await client.get(f"/api/pages/{page_id}/contacts")
    assert answer.status_code == 200, answer.text
    return {c["psid"]: c for c in answer.json()["items"]}


@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
async def test_each_delimiter_is_read_with_quoted_cells_kept_whole(
    api: Any, db: Database, vault: Vault, tmp_path: Path, delimiter: str
) -> None:
    page = await connected_page(db, vault)
    manager = await api(Role.MANAGER)
    path = tmp_path / "people.csv"
    path.write_bytes(csv_text(delimiter).encode("utf-8-sig"))  # Excel's BOM
    report = await import_contacts(manager, page.id, path.read_bytes())
    assert report["state"] == "completed", report
    assert (report["rows"], report["created"], report["updated"], report["refused"]) == (3, 2, 0, 1)
    assert report["errors"][0]["row"] == 4 and report["errors"][0]["column"] == "psid"
    people = await _contacts(manager, page.id)
    assert people["101"]["last_name"] == "Lopez, Jr;"  # stripped, the quoted delimiters kept
    assert sorted(people["101"]["tags"]) == ["new", "vip"]
    assert people["102"]["tags"] == ["vip"] and set(people) == {"101", "102"}

    again = csv_text(delimiter, [ROWS[0], ["102", "Benny", "", ""], ["103", "Cy", "", ""]])
    second = await import_contacts(manager, page.id, again.encode())
    assert (second["created"], second["updated"], second["refused"]) == (1, 1, 0)


def test_the_header_decides_when_the_sniffer_cannot_tell() -> None:
    """Rows with cells left off (the import pads them) leave `csv.Sniffer` without a
    consistent count; the header's `psid` column decides."""
    assert detect_delimiter(b"psid;first_name;last_name\n1;Ann\n2;Bo;Li\n3\n") == ";"
    assert detect_delimiter(b"psid\tfirst_name\tlast_name\n1\n2\tBo\n") == "\t"
    assert detect_delimiter(b"psid,first_name,tags\n1\n2,Bo,a;b;c;d\n3,,x;y\n") == ","
    assert detect_delimiter(b"psid,tags\n1,a;b;c\n2,d;e;f\n") == ","  # tags' own `;`
    assert detect_delimiter(b'"psid"\t"first_name"\r\n1\t"x;y,z"\r\n') == "\t"
    assert detect_delimiter(b"psid\n1\n") == ","  # one column: nothing to tell, comma


async def test_a_header_without_psid_names_the_delimiters(
    api: Any, db: Database, vault: Vault
) -> None:
    page = await connected_page(db, vault)
    manager = await api(Role.MANAGER)
    answer = await manager.post(
        f"/api/pages/{page.id}/contacts/import",
        content=b"id|name\n1|Ana\n",
        headers={"content-type": "text/csv"},
    )
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["message"]
    assert "no `psid` column" in message and "commas, semicolons or tabs" in message


def test_the_cli_imports_a_semicolon_file_and_says_what_it_created(
    data_dir: Path,  # noqa: F811
    tmp_path: Path,
    simulator: Any,
) -> None:
    url = simulator.url
    httpx.post(f"{url}/__sim/reset").raise_for_status()
    httpx.post(
        f"{url}/__sim/pages", json={"page_id": "1001", "name": "Acme", "access_token": SIM_TOKEN}
    ).raise_for_status()
    assert (
        run(data_dir, "pages", "add", "--token", SIM_TOKEN, PAGECAST_GRAPH_API_URL=url).returncode
        == 0
    )
    path = tmp_path / "excel.csv"
    path.write_text(csv_text(";"), encoding="utf-8-sig")
    result = run(data_dir, "contacts", "import", str(path), "--page", "1")
    assert result.returncode == 0, result.stderr
    assert "3 rows read, 2 created, 0 updated, 1 refused." in result.stdout
    assert "row 4, psid:" in result.stderr
