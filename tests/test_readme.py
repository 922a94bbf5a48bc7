"""The README and docs/ point at files that exist, and the README stays a short front page."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 12_500  # the front page; everything else belongs in docs/

CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)  # code may hold brackets that are not links
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(markdown: str) -> list[str]:
    """Targets of the links and images in `markdown` that point into the repository, without #anchors."""
    targets = LINK.findall(CODE.sub("", markdown))
    return [
        target.split("#")[0]
        for target in targets
        if not re.match(r"[a-z]+:", target) and not target.startswith("#")
    ]


def test_relative_links_are_found_outside_code_only():
    text = "[a](docs/a.md#x) ![b](b.png) [web](https://x.org) [top](#top) `[c](c.md)`\n```\n[d](d.md)\n```"
    assert relative_links(text) == ["docs/a.md", "b.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file(page):
    links = relative_links(page.read_text(encoding="utf-8"))
    broken = [
        link
        for link in links
        if not (page.parent / link).resolve().is_file() or ROOT not in (page.parent / link).resolve().parents
    ]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_the_readme_links_every_page_of_docs():
    linked = {(ROOT / link).resolve() for link in relative_links(README.read_text(encoding="utf-8"))}
    unlinked = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"docs/ pages the README does not link: {unlinked}"


def test_the_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes, over {README_MAX_BYTES}; move detail to docs/"
    )
