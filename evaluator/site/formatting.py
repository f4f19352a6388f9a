"""How numbers and text appear on the site: the papers' precision, and escaping for text that
comes from submissions."""

from __future__ import annotations

import html
import re

from evaluator.registry import Metric


def format_value(value: float | None, metric: Metric) -> str:
    """FORB metrics as percentages with two decimals, anomaly metrics as fractions with three,
    as the papers print them; missing values as an en dash, never as zero."""
    if value is None:
        return "–"
    shown = 100 * value if metric.percent else value
    return f"{shown:.{metric.decimals}f}"


def escape(text) -> str:
    """HTML-escape text from submissions; also neutralise Markdown/Jinja-looking syntax."""
    if text is None:
        return ""
    out = html.escape(str(text), quote=True)
    for char, entity in (("[", "&#91;"), ("]", "&#93;"), ("{", "&#123;"), ("}", "&#125;"),
                         ("*", "&#42;"), ("_", "&#95;"), ("`", "&#96;"), ("|", "&#124;")):
        out = out.replace(char, entity)
    return out


_TITLE_SAFE = re.compile(r"[^\w .,:;!?()+\-/@#%'’]")


def plain_title(text) -> str:
    """Text for a heading, which MkDocs also copies into the page's <title> *unescaped*: keep
    letters, digits, spaces and harmless punctuation only, so nothing there can be markup."""
    return _TITLE_SAFE.sub("", str(text or "")).strip() or "untitled"


def safe_url(url) -> str | None:
    """Only http(s) links are rendered; anything else (javascript:, data:) is dropped."""
    if isinstance(url, str) and (url.startswith("https://") or url.startswith("http://")):
        return html.escape(url, quote=True)
    return None
