"""Every Traditional Chinese page follows docs/glossary.zh-TW.md.

The glossary's table lists, for each term, the variants it rejects and whether the term is
glossed ("首次加註") on its first use in a page's prose. These tests read that table, so a row
added to the glossary is enforced the day it is added, and a new `*.zh-TW.md` page is covered
the day it is written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.zh-TW.md"
PAGES = sorted(
    p for p in [ROOT / "README.zh-TW.md", *(ROOT / "docs").glob("*.zh-TW.md")] if p != GLOSSARY
)
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
WRAP = re.compile(r"(?<=[^\x00-\x7f])\n(?=[^\x00-\x7f])")
LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]+)\)")
# Characters that exist only in Simplified Chinese (their Traditional forms differ), the ones a
# converter most often lets through.
SIMPLIFIED = set(
    "这们个数据习过时对发还应该实现网络计图说话开关种类为与将从设环层训练输损优阵径导传递参"
    "随机试题总结构杂验证写读错误调节运进问么会没让给样经变换缩标确认显组线单词页归输"
    "复盖则观点带动态态库码项档录释详细请务处约"
)


def glossary() -> list[dict[str, object]]:
    """The rows of the glossary's table: term, English, glossed, rejected variants."""
    text = GLOSSARY.read_text(encoding="utf-8")
    table = text.split("## 用詞", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("用詞", "") or set(cells[0]) <= {"-"}:
            continue
        term, english, glossed, rejected, _ = cells
        rows.append(
            {
                "term": term,
                "english": english,
                "glossed": glossed == "✓",
                "rejected": [v for v in re.split(r"[、,]", rejected) if v.strip()],
            }
        )
    return rows


def joined(text: str) -> str:
    """The text with the line breaks inside Chinese sentences removed (a wrapped line must not
    hide a term split over two lines)."""
    return WRAP.sub("", text)


def prose(page: Path) -> str:
    """The page's prose: no code blocks, inline code or headings; wrapped lines joined."""
    text = FENCE.sub("\n", page.read_text(encoding="utf-8"))
    lines = [
        "" if line.startswith("#") else INLINE_CODE.sub(" ", line) for line in text.splitlines()
    ]
    return joined("\n".join(lines))


def where(text: str, at: int) -> str:
    return repr(text[max(0, at - 12) : at + 16])


def test_the_glossary_has_its_table():
    rows = glossary()
    terms = {row["term"] for row in rows}
    assert {"連鎖律", "最佳化器", "訓練迴圈", "迴歸", "函式", "函數", "梯度", "epoch"} <= terms
    assert len(rows) > 40
    for row in rows:
        for variant in row["rejected"]:
            assert variant not in row["term"], f"{row['term']} rejects itself ({variant})"


def test_there_are_pages_to_check():
    names = {p.name for p in PAGES}
    assert {"README.zh-TW.md", "autodiff.zh-TW.md", "pitfalls.zh-TW.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_rejected_variant(page):
    text = joined(page.read_text(encoding="utf-8"))
    found = [
        f"{where(text, m.start())}: {variant!r} (the glossary says {row['term']})"
        for row in glossary()
        for variant in row["rejected"]
        for m in re.finditer(re.escape(variant), text)
    ]
    assert not found, f"{page.name}:\n" + "\n".join(found)


@pytest.mark.parametrize("page", [*PAGES, GLOSSARY], ids=lambda p: p.name)
def test_no_simplified_characters(page):
    text = page.read_text(encoding="utf-8")
    found = [
        f"line {n}: {''.join(sorted(set(line) & SIMPLIFIED))}"
        for n, line in enumerate(text.splitlines(), 1)
        if set(line) & SIMPLIFIED
    ]
    assert not found, f"{page.name} has Simplified characters:\n" + "\n".join(found)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_terms_are_glossed_on_first_use(page):
    text = prose(page)
    missing = []
    for row in glossary():
        term = str(row["term"])
        at = text.find(term)
        if not row["glossed"] or at < 0:
            continue
        if not text[at + len(term) :].lstrip("*\n ").startswith("（"):
            missing.append(f"{where(text, at)}: write {term}（{row['english']}）")
    assert not missing, f"{page.name}: terms not glossed on first use:\n" + "\n".join(missing)


def english_only(target: str) -> bool:
    """Whether a link leads to a page that has no Traditional Chinese version."""
    if target.startswith(("http://", "https://")):
        return not any(mark in target for mark in ("zh-TW", "zh-tw", "zh_TW"))
    path = target.split("#", 1)[0]
    if not path.endswith(".md"):
        return False
    return not path.endswith(".zh-TW.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_to_english_pages_are_marked(page):
    text = prose(page)
    unmarked = [
        m.group(0)
        for m in LINK.finditer(text)
        if english_only(m.group(2))
        and "英文" not in text[max(0, m.start() - 8) : m.end() + 8]
        and "英文" not in m.group(1)
    ]
    assert not unmarked, (
        f"{page.name}: links to English-only pages, mark them （英文）:\n" + "\n".join(unmarked)
    )
