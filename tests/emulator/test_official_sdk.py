"""Ayrshare's official Python SDK (``social-post-api``) works against the emulator, as against Ayrshare.

The SDK knows nothing of the provider: it sends its own extra fields (``source=pypi``), its own
headers and paths. What it gets back is what the provider's contract tests check with plain HTTP.
"""

from __future__ import annotations

import time

import pytest

from ayrshare_emulator.scenarios import TRANSIENT, add_failed
from tests.helpers import API_KEY, X_KEY, X_SECRET

pytestmark = pytest.mark.any_airflow  # the same on every Airflow: CI runs it once, on 3.3


@pytest.fixture
def sdk(emulator, monkeypatch):
    import ayrshare.ayrshare as sdk_module
    from ayrshare import SocialPost

    monkeypatch.setattr(sdk_module, "base", f"{emulator.url}/api/")  # the SDK's one base URL
    return SocialPost(API_KEY).set_twitter_byo(X_KEY, X_SECRET)


def test_the_sdk_lists_failed_posts_and_retries_one_exactly_once(emulator, sdk):
    post_id = add_failed(emulator.state, "", ["twitter"], {"twitter": TRANSIENT}, text="SDK", age_days=1).id

    listed = sdk.history({"lastDays": 0})["history"]
    assert [post["id"] for post in listed if post["status"] == "error"] == [post_id]
    assert sdk.retryPost({"id": post_id}) == {"status": "pending", "id": post_id}
    refused = sdk.retryPost({"id": post_id})
    assert refused["status"] == "error" and refused["code"] == 329
    for _ in range(50):
        if (record := sdk.getPost({"id": post_id}))["status"] == "success":
            break
        time.sleep(0.05)
    assert record["postIds"][0]["platform"] == "twitter"
    assert emulator.state.counters()["retry_puts"] == {post_id: 2}  # the refused one counted, not applied


def test_the_sdk_posts_and_a_wrong_key_gets_ayrshares_error(emulator, sdk):
    from ayrshare import SocialPost

    created = sdk.post({"post": "From the SDK", "platforms": ["linkedin"]})
    assert created["status"] == "success" and created["postIds"][0]["platform"] == "linkedin"
    assert sdk.user()["title"]
    refused = SocialPost("not-the-key").history()
    assert refused["status"] == "error" and refused["code"] == 102
