"""The report's one HTML page: every table and figure with its run counts and its query."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

# Sets data-images-status on <body> once the page has loaded: "all-loaded" when every <img>
# decoded to a non-empty picture, "missing" otherwise (read back by the headless-browser test).
IMAGE_CHECK = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.images = String(images.length);
  document.body.dataset.imagesLoaded = String(loaded);
  document.body.dataset.imagesStatus = loaded === images.length ? "all-loaded" : "missing";
});
</script>
"""
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.6em; } h4 { margin-bottom: .3em; }
p.warning { background: #fff4e0; border-left: 4px solid #e69f00; padding: .4em .6em; }
table.table { border-collapse: collapse; font-size: 0.85em; margin: .5em 0; }
table.table th, table.table td { border-bottom: 1px solid #ddd; padding: .25em .6em;
  text-align: right; }
table.table th { white-space: nowrap; }
table.table th { background: #f4f4f4; }
pre.query { background: #f7f7f7; padding: .4em .6em; font-size: 0.8em; white-space: pre-wrap; }
p.counts, p.files { font-size: 0.85em; color: #555; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.scroll { overflow-x: auto; }
"""


@dataclass
class Item:
    """One table or figure on the page: its body (HTML), files, queries and run counts."""

    title: str
    body: str
    queries: list[str] = field(default_factory=list)
    counts: str = ""
    files: list[str] = field(default_factory=list)
    note: str = ""
    warning: bool = False  # drawn as a warning (the note highlighted)


@dataclass
class Section:
    """A heading with its items; sections with the same ``group`` (consecutive) sit under one
    heading of that name (the arch x data set above its budgets)."""

    title: str
    items: list[Item] = field(default_factory=list)
    empty: str = "nothing in the database for this section"
    group: str = ""


def figure_body(png: str, svg: str, alt: str) -> str:
    """An <img> of the PNG, linking to the SVG."""
    return (
        f'<figure><a href="{escape(svg)}"><img src="{escape(png)}" alt="{escape(alt)}"></a>'
        "</figure>"
    )


def _item(item: Item, level: int = 3) -> str:
    parts = [f"<h{level}>{escape(item.title)}</h{level}>"]
    if item.counts:
        parts.append(f'<p class="counts">{escape(item.counts)}</p>')
    if item.note:
        css = ' class="warning"' if item.warning else ""
        parts.append(f"<p{css}>{escape(item.note)}</p>")
    parts.append(f'<div class="scroll">{item.body}</div>')
    if item.files:
        links = ", ".join(f'<a href="{escape(f)}">{escape(f)}</a>' for f in item.files)
        parts.append(f'<p class="files">Files: {links}</p>')
    if item.queries:
        text = "\n".join(item.queries)
        parts.append(f'<p class="counts">Made by:</p><pre class="query">{escape(text)}</pre>')
    return "\n".join(parts)


def page(title: str, intro: str, sections: list[Section]) -> str:
    """The whole page, sections in order with a table of contents (grouped sections nested
    under their group's heading)."""
    toc: list[str] = []
    body: list[str] = []
    group = ""
    for i, section in enumerate(sections):
        if section.group != group:
            if group:
                toc.append("</ul></li>")
            group = section.group
            if group:
                toc.append(f'<li><a href="#g{i}">{escape(group)}</a><ul>')
                body.append(f'<h2 id="g{i}">{escape(group)}</h2>')
        level = 3 if group else 2
        toc.append(f'<li><a href="#s{i}">{escape(section.title)}</a></li>')
        body.append(f'<h{level} id="s{i}">{escape(section.title)}</h{level}>')
        items = [_item(item, level + 1) for item in section.items]
        body.extend(items or [f"<p>{escape(section.empty)}</p>"])
    if group:
        toc.append("</ul></li>")
    toc_html = "".join(toc)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n{IMAGE_CHECK}</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n<p>{escape(intro)}</p>\n<ul>{toc_html}</ul>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
