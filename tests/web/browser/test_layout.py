"""Layout on a phone (375 px wide): no page scrolls sideways, no parent table cuts a column,
and every text-like input looks like a text input."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.demo.sis import DemoSummary
from gateway.settings import Settings

from ..conftest import issue_code
from .conftest import LiveServer, accept_guidelines, activate
from .test_accessibility import PageCheck, assert_every_page_checked, visit_every_page

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 667}

# Whether anything in the page reaches past the viewport's right edge, and what (for the message).
WIDER_THAN_THE_SCREEN = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => {
    const box = e.getBoundingClientRect();
    let clipped = false;  // inside a region that scrolls by itself is fine: the page does not move
    for (let p = e.parentElement; p; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden'].includes(style.overflowX) && p !== document.body && p !== document.documentElement) { clipped = true; break; }
    }
    return !clipped && box.width > 0 && box.right > width + 0.5;
  }).slice(0, 3).map(e => e.tagName + (e.className ? '.' + e.className : '') + ': ' + (e.textContent || '').trim().slice(0, 40));
  return {scroll: document.documentElement.scrollWidth, client: width, wide};
}"""


class NoSidewaysScroll(PageCheck):
    """The page is no wider than the phone's screen."""

    def inspect(self, page: Any, label: str) -> None:
        found = page.evaluate(WIDER_THAN_THE_SCREEN)
        if found["scroll"] > found["client"]:
            self.violations.append(f"{label} [{self.language}] is {found['scroll']} px wide on a "
                                   f"{found['client']} px screen: {found['wide']}")


@pytest.mark.parametrize("language", ["en", "es"])
def test_no_page_scrolls_sideways_on_a_375_px_phone(chromium: Any, live: LiveServer,
                                                     district: tuple[Settings, DemoSummary], language: str) -> None:
    contexts: list[Any] = []

    def new_person() -> Any:
        context = chromium.new_context(base_url=live.url, viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                       has_touch=True)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    check = NoSidewaysScroll(live.app, language)
    try:
        visit_every_page(new_person, district, check)
    finally:
        for context in contexts:
            context.close()
    assert check.violations == []
    assert_every_page_checked(live.app, check)


def test_parent_tables_keep_every_column_on_screen_and_emails_whole_words(
        chromium: Any, live: LiveServer, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    case = summary.cases["siblings_older"]
    context = chromium.new_context(base_url=live.url, viewport=PHONE, is_mobile=True, locale="en-US")
    page = context.new_page()
    activate(page, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "narrow.parent")
    accept_guidelines(page)
    for name in ("schedule", "grades", "assignments", "attendance"):
        page.goto(f"/students/sis/{case['pupil_id']}/{name}")
        cells = page.evaluate("""() => [...document.querySelectorAll('main td')].map(td => {
            const box = td.getBoundingClientRect(); return [box.left, box.right]; })""")
        assert cells, name
        assert all(left >= 0 and right <= 375 for left, right in cells), (name, cells[:5])
    page.goto(f"/students/sis/{case['pupil_id']}/schedule")
    # Each line of a wrapped address ends at "@" or "." (or the address's own end), never inside a word.
    lines = page.evaluate("""() => [...document.querySelectorAll('a.email')].map(a => {
        const range = document.createRange(), text = a.textContent, tops = new Map();
        for (let i = 0; i < text.length; i++) {
          let node = a.firstChild, offset = i;  // walk the text nodes split by <wbr>
          for (const n of [...a.childNodes].filter(n => n.nodeType === 3)) { if (offset < n.length) { node = n; break; } offset -= n.length; }
          range.setStart(node, offset); range.setEnd(node, offset + 1);
          const top = Math.round(range.getBoundingClientRect().top);
          tops.set(top, (tops.get(top) || '') + text[i]);
        }
        return [...tops.values()]; })""")
    assert lines, "no teacher email on the schedule"
    for address in lines:
        for line in address[1:]:
            assert line[0] in "@.", address
    context.close()


def test_email_date_and_select_inputs_look_like_text_inputs(chromium: Any, live: LiveServer) -> None:
    context = chromium.new_context(base_url=live.url, viewport=PHONE)
    page = context.new_page()
    page.goto("/apply")
    looks = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('main input, main select')]
        .filter(e => !['checkbox', 'radio', 'hidden'].includes(e.type)).map(e => {
          const s = getComputedStyle(e);
          return [e.tagName.toLowerCase() + ':' + (e.type || ''), [s.borderTopWidth, s.borderTopStyle, s.borderTopColor,
                  s.paddingLeft, s.fontSize, e.getBoundingClientRect().width]]; }))""")
    kinds = set(looks)
    assert {"input:text", "input:email", "input:date", "select:select-one"} <= kinds, kinds
    assert len({tuple(look) for look in looks.values()}) == 1, looks
    context.close()
