"""The browser pages as served: a page's HTML with the shared heads-up display (``web/hud.js``,
one drawing for the surgeon page and the watch-only viewer) inlined where the page says
``<!-- telesurg:hud.js -->``. Inlined rather than a second URL, so a page is one request and the
token rules of the page are the only ones."""

from __future__ import annotations

from pathlib import Path

WEB = Path(__file__).with_name("web")
HUD_MARKER = "<!-- telesurg:hud.js -->"


def page_html(path: Path) -> str:
    """The page at ``path`` with the HUD script inlined (read each time: editing a page needs no restart)."""
    text = path.read_text()
    if HUD_MARKER in text:
        text = text.replace(HUD_MARKER, "<script>\n" + (WEB / "hud.js").read_text() + "</script>")
    return text
