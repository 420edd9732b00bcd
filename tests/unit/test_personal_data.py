"""Personal-data masking: what it removes, what it keeps, and that placeholders are stable."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logllm_plugin.personal_data import PersonalDataMasker

LINES = [
    "login failed for alice@example.com from 10.0.0.12 password=hunter2",
    "retry alice@example.com via 10.0.0.12:8080, then bob@corp.example.org from fe80::1",
    "Authorization: Bearer abcdefghijklmnop1234 api_key=ZXhhbXBsZS1rZXk token: eyJhbGciOi.eyJzdWIiOiIx.SflKxwRJSM",
    "user=carol uid=42 user_3396 host 2001:db8:0:0:0:0:2:1 key AKIAIOSFODNN7EXAMPLE",
]
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def test_emails_ips_tokens_and_user_ids_are_masked():
    masked = PersonalDataMasker().mask_sequence(LINES)
    text = "\n".join(masked)
    assert not EMAIL.search(text) and not IPV4.search(text)
    for secret in ("hunter2", "abcdefghijklmnop1234", "ZXhhbXBsZS1rZXk", "eyJhbGciOi", "AKIAIOSFODNN7EXAMPLE",
                   "fe80::1", "2001:db8", "carol", "user_3396"):
        assert secret not in text, secret
    assert masked[0] == "login failed for <EMAIL_1> from <IP_1> password=<SECRET_1>"


def test_the_same_value_gets_the_same_placeholder_within_a_sequence():
    masked = PersonalDataMasker().mask_sequence(LINES[:2])
    assert masked[1].startswith("retry <EMAIL_1> via <IP_1>:8080, then <EMAIL_2> from <IP_2>")
    again = PersonalDataMasker().mask_sequence(LINES[:2])
    assert again == masked  # deterministic


def test_ordinary_log_text_is_left_alone():
    line = "2025-07-13 10:12:34 worker-3 processed 1500 records in 2.5s (version 1.2.3) blk_-123 at 12:30:45"
    assert PersonalDataMasker().mask(line) == line


def test_configured_patterns_mask_site_specific_ids_and_bad_ones_are_rejected():
    masker = PersonalDataMasker([("ORDER", r"\bord-\d{6}\b")])
    assert masker.mask("refund ord-123456 and ord-123456 then ord-654321") == "refund <ORDER_1> and <ORDER_1> then <ORDER_2>"
    with pytest.raises(ValueError, match="not a valid regex"):
        PersonalDataMasker([("BAD", "(unclosed")])


@settings(max_examples=60, deadline=None)
@given(st.emails(), st.ip_addresses(v=4), st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), max_size=30))
def test_no_generated_email_or_ipv4_survives(email, ip, noise):
    masked = PersonalDataMasker().mask(f"{noise} contact {email} from {ip} {noise}")
    assert email not in masked and str(ip) not in masked


def test_masking_twice_gives_the_text_of_masking_once():
    """The learner's history is masked when it arrives; a second pass (a stored sequence scored
    again) must not nest placeholders: `user_1`-like ids used to match inside `<USER_1>`."""
    from logllm_plugin.personal_data import PersonalDataMasker

    masker = PersonalDataMasker()
    line = "login from 10.2.3.4 user=u63315 <bob@example.com> id user_42 token=abcd1234abcd1234abcd"
    once = masker.mask(line)
    assert "10.2.3.4" not in once and "u63315" not in once and "user_42" not in once
    assert masker.mask(once) == once
    # a placeholder after a key is kept as it is, not renumbered, and not reported as a value
    masked_later = "retry with token=<SECRET_2> for user=<USER_3>"
    assert masker.mask(masked_later) == masked_later
    assert masker.spans(masked_later) == [] and masker.spans(once) == []
