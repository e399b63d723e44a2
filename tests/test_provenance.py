"""Provenance (nhipl.provenance): where an argument came from, with web addresses compared in
their normal form, and the same answer from the runtime and from replay."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import nhipl
from nhipl.provenance import ADDRESS_CHARS, Outputs, address, origin, provenance
from nhipl.runtime import Runtime
from nhipl.simulator import simulate

PROMPT = "Read the article at www.news-site.com and the page (https://Docs.Example.org/guide?v=2), then reply."


@pytest.mark.parametrize("value", [
    "www.news-site.com",                     # verbatim, as before
    "http://www.news-site.com",              # the scheme the user left out
    "https://www.news-site.com",
    "https://www.news-site.com/",            # a lone `/` path
    "HTTP://WWW.News-Site.COM",              # the host (and scheme) in another case
    "https://docs.example.org/guide?v=2",    # the scheme and host as the user wrote them, another case
])
def test_the_user_s_address_in_another_usual_spelling_is_from_the_user(value):
    assert origin(value, PROMPT, None) == "user"


@pytest.mark.parametrize("value", [
    "http://evil.com/www.news-site.com",      # the user's address inside another one's path
    "http://evil.com?u=www.news-site.com",
    "http://www.news-site.com.evil.com",      # a longer host
    "http://www.news-site.com@evil.com",      # user info before another host
    "http://evil-www.news-site.com",
    "http://www.news-site.com:8080",          # another port
    "http://www.news-site.com/?leak=secret",  # a path or query can carry data
    "http://www.news-site.com/a",
    "http://www.news-site.com#frag",
    "http://docs.example.org/guide?v=2",      # https written by the user: http is a downgrade
    "https://docs.example.org/Guide?v=2",     # the path is compared verbatim
    "https://docs.example.org/guide?v=2/",
    "http://www.news-site.co",
    "http://www.news\u2010site.com",           # a look-alike hyphen
    "http://www.n\u0435ws-site.com",           # a Cyrillic look-alike letter
    "http://www.news-site.com\n",
    "WWW.NEWS-SITE.COM",                      # without a scheme: compared verbatim (could be a file name)
    "www.news-site.com/",
])
def test_an_address_the_user_did_not_give_is_not_from_the_user(value):
    assert origin(value, PROMPT, None) != "user"


@pytest.mark.parametrize("prompt", [
    "mail me at bob@www.x.com",          # a host inside an e-mail address
    "see evil.com/www.x.com",            # inside another address's path
    "see http://evil.com/?next=www.x.com",
    "the host www.x.com.evil.com",
    "not www.x.co",
])
def test_an_address_counts_only_where_the_user_wrote_it_whole(prompt):
    assert origin("http://www.x.com", prompt, None) == "unknown"


def test_punctuation_after_an_address_is_not_part_of_it():
    for prompt in ("Visit www.x.com.", "Visit www.x.com, then", "(www.x.com)", "'www.x.com'", "see www.x.com/a/b!"):
        assert origin("https://www.x.com" + ("/a/b" if "/a/b" in prompt else ""), prompt, None) == "user", prompt


def test_a_look_alike_letter_does_not_become_latin():
    # U+212A KELVIN SIGN lowercases to `k`: the host must not be folded outside ASCII
    assert "www.ex\u212aample.com".lower() == "www.exkample.com"
    assert address("http://www.ex\u212aample.com") is None
    assert origin("http://www.ex\u212aample.com", "open www.exkample.com", None) == "unknown"


def test_a_very_long_value_is_compared_verbatim_only():
    path = "/" + "a" * ADDRESS_CHARS
    prompt = "fetch www.x.com" + path
    assert origin("www.x.com" + path, prompt, None) == "user"
    assert origin("http://www.x.com" + path, prompt, None) == "unknown"
    assert origin("http://www.x.com" + path[: ADDRESS_CHARS - 20], "fetch www.x.com" + path[: ADDRESS_CHARS - 20], None) == "user"


def test_a_tool_s_address_in_another_spelling_is_from_that_tool():
    outputs = Outputs()
    outputs.add("read_channel_messages", "- body: I read an article on www.informations.com!\n  sender: Bob")
    outputs.add("get_webpage", "Visit http://www.true-informations.com now")
    assert origin("http://www.informations.com", "Summarize Bob's article", outputs) == "tool:read_channel_messages"
    assert origin("www.true-informations.com", "", outputs) == "tool:get_webpage"  # verbatim inside it
    assert origin("https://www.true-informations.com", "", outputs) == "unknown"  # http written: no upgrade
    outputs.clear()
    assert origin("http://www.informations.com", "", outputs) == "unknown"


def test_a_list_of_addresses_the_user_gave_is_from_the_user():
    prompt = "Visit websites of Dora (www.dora-website.com) and Eve (www.eve-blog.com)."
    assert provenance({"urls": ["http://www.dora-website.com", "https://www.eve-blog.com/"]}, prompt, None) == {"urls": "user"}
    assert provenance({"urls": ["http://www.dora-website.com", "http://evil.com"]}, prompt, None) == {"urls": "unknown"}


# -- properties ---------------------------------------------------------------------------

HOST = st.from_regex(r"[a-z0-9]{1,6}(-[a-z0-9]{1,4})?(\.[a-z0-9]{1,6}){1,3}", fullmatch=True)
URLISH = st.text(alphabet="htps:/.wexcomWXHTPS-@?#=&_ 1\n", max_size=40)


def _loosely_present(value: str, prompt: str) -> bool:
    """What normalisation may at most add: the value without its scheme or a final `/`, in
    any case, written in the instruction (an over-approximation of the normal form)."""
    bare = value.split("://", 1)[1] if "://" in value else value
    if bare.endswith("/"):
        bare = bare[:-1]
    return bool(bare) and bare.lower() in prompt.lower()


@given(value=URLISH, prompt=URLISH)
def test_normalisation_never_makes_an_absent_value_the_user_s(value, prompt):
    if origin(value, prompt, None) == "user":
        assert value in prompt or _loosely_present(value, prompt)


@given(host=HOST, other=HOST, scheme=st.sampled_from(["http://", "https://", "HTTP://"]),
       tail=st.sampled_from(["/{o}", ".{o}", "@{o}", ":8080", "/?q={o}", "#{o}", "/{o}/"]))
def test_an_address_built_around_the_user_s_host_is_not_the_user_s(host, other, scheme, tail):
    prompt = f"please open {host} now"
    value = scheme + host + tail.format(o=other)
    assume(value.split("://", 1)[1] not in prompt)
    assert origin(value, prompt, None) != "user"
    assert origin(scheme + other + "/" + host, prompt, None) != "user" or other + "/" + host in prompt


@given(host=HOST, scheme=st.sampled_from(["http://", "https://", "Http://"]), slash=st.booleans(),
       flips=st.lists(st.booleans(), max_size=40), end=st.sampled_from(["", ".", ",", ")", "!"]))
def test_the_user_s_host_in_any_usual_spelling_is_the_user_s(host, scheme, slash, flips, end):
    spelled = "".join(c.upper() if i < len(flips) and flips[i] else c for i, c in enumerate(host))
    prompt = f"please open ({host}{end} thanks"
    assert origin(scheme + spelled + ("/" if slash else ""), prompt, None) == "user"


# -- the runtime and replay agree ---------------------------------------------------------

POLICY = """
@id("fetch") permit any agent to call "get_webpage" grant ttl 5m;
@id("copied-url") require approval for any agent to call "get_webpage"
    unless provenance.url == "user"
    because "the page address was not given by the user";
"""
AGENT = "spiffe://acme.org/agents/reader"


def test_the_runtime_and_replay_give_the_same_provenance(tmp_path):
    policies = nhipl.loads(POLICY)
    prompt = "Summarize www.informations.com for me."
    fetches = [("http://www.informations.com", "Jobs report. Also see www.true-informations.com/next"),
               ("https://www.true-informations.com/next", "More."),
               ("http://evil.com/www.informations.com", "Nothing.")]
    task = Runtime(policies).start_task(AGENT, "reading", prompt=prompt)
    live = []
    for url, output in fetches:
        decision = task.check(AGENT, "get_webpage", {"url": url})
        live.append((str(decision.effect), decision.request["provenance"]))
        task.record_output("get_webpage", output)
    task.end()
    assert live == [("allow", {"url": "user"}), ("approval_required", {"url": "tool:get_webpage"}),
                    ("approval_required", {"url": "unknown"})]

    events = [{"t": 0, "kind": "task_start", "task": "t1", "agent": AGENT, "intent": "reading", "prompt": prompt}]
    for n, (url, output) in enumerate(fetches, start=1):
        events.append({"t": n, "kind": "tool_call", "task": "t1", "agent": AGENT, "tool": "get_webpage",
                       "args": {"url": url}, "output": output})
    events.append({"t": 9, "kind": "task_end", "task": "t1"})
    replayed = {}
    report = simulate(events, policies, on_request=lambda line, request: replayed.__setitem__(line, request))
    assert [replayed[n]["provenance"] for n in (2, 3, 4)] == [p for _, p in live]
    gated = {f.line for f in report.findings if f.kind == "overreach"}
    assert gated == {3, 4}
