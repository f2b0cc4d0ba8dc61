"""Links in e-mails and webhook messages open the page a person would open in the browser."""

from __future__ import annotations

from dataclasses import replace

from core.config import get_settings
from core.services.notifications.sending import absolute_link


def test_inbox_links_become_page_addresses() -> None:
    settings = replace(get_settings(), public_url="https://quorum.example.com/")
    assert (
        absolute_link(settings, "pages/3_Reviews.py?model=churn&version=2")
        == "https://quorum.example.com/Reviews?model=churn&version=2"
    )
    assert absolute_link(settings, "app.py") == "https://quorum.example.com/"
    assert absolute_link(settings, "https://elsewhere.example/x") == "https://elsewhere.example/x"
    assert absolute_link(replace(settings, public_url=""), "app.py") == "app.py"
