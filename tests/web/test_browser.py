"""What a person does on the web page, in real headless Chromium against `fastnpc serve
--fake-llm`: register, generate, chat (streamed, stopped), a group turn, admin, and text that
looks like HTML shown as text. Each main screen is saved under tests/artifacts/web/."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.conftest import ADMIN, PASSWORD, Server, Tab

CATEGORIES = ["identity", "personality", "backstory", "abilities", "dialogue", "tasks", "world",
              "system"]
STREAMING = ".message.streaming .text"


def username(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(3)}"


def test_register_generate_and_chat(tab: Tab) -> None:
    page = tab.page
    tab.open()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    tab.shot("01-login")
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Username").fill(username("ada"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="No characters yet")).to_be_visible()

    # Generate: the eight categories fill in as their events arrive.
    page.get_by_role("link", name="New character").first.click()
    page.get_by_label("Name").fill("Old Tom")
    page.get_by_label("Source text (optional)").fill("A lighthouse keeper. 他会说中文。")
    page.get_by_role("button", name="Generate", exact=True).click()
    for category in CATEGORIES:
        expect(page.locator(f'.category[data-category="{category}"]')).to_have_class(
            "category ok"
        )
    expect(page.locator(".category.ok .category-fields")).to_have_count(8)
    expect(page.get_by_text("Old Tom is ready.")).to_be_visible()
    tab.shot("02-generated", full_page=True)

    page.get_by_role("link", name="Chat with Old Tom").click()
    box = page.get_by_label("Message to Old Tom")
    expect(box).to_be_focused()
    # Shift+Enter is a new line, not a send.
    box.type("Hello, keeper.")
    box.press("Shift+Enter")
    box.type("你好！ [[fake:tps=20]]")
    assert box.input_value() == "Hello, keeper.\n你好！ [[fake:tps=20]]"
    expect(page.locator(".message.role-user")).to_have_count(0)
    box.press("Enter")

    # Deltas are on screen while the reply is still being written (100 chunks at 20/s).
    page.wait_for_function(f"document.querySelector('{STREAMING}')?.textContent.length > 12")
    partial = page.locator(STREAMING).text_content() or ""
    assert partial.startswith("[fake] ")
    composer = page.locator(".composer").bounding_box()
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.locator(".message.role-user .text")).to_have_text(
        "Hello, keeper.\n你好！ [[fake:tps=20]]"
    )
    tab.shot("03-chat-streaming")
    expect(page.locator(".message.streaming")).to_have_count(0, timeout=30_000)
    reply = page.locator(".message.role-assistant .text").last.text_content() or ""
    assert len(reply) > len(partial) and reply.startswith(partial)
    assert page.locator(".composer").bounding_box() == composer  # nothing moved as it streamed
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(page.get_by_role("button", name="Regenerate this reply").last).to_be_visible()
    tab.shot("04-chat")

    # Esc stops a slow reply: the partial text stays, marked as stopped, also after a reload.
    box.fill("Tell me a long story [[fake:tps=4]]")
    box.press("Enter")
    page.wait_for_function(f"document.querySelector('{STREAMING}')?.textContent.length > 0")
    page.keyboard.press("Escape")
    stopped = page.locator(".message.status-interrupted")
    expect(stopped).to_have_count(1)
    expect(stopped.locator(".badge")).to_have_text("Stopped")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    kept = stopped.locator(".text").text_content() or ""
    assert kept and "[fake] ".startswith(kept[:7])
    page.reload()
    expect(page.locator(".message.status-interrupted .text")).to_have_text(kept)

    # Regenerate replaces the last reply with a new, complete one.
    page.get_by_role("button", name="Regenerate this reply").last.click()
    expect(page.locator(".message.streaming")).to_have_count(0, timeout=30_000)
    expect(page.locator(".message.status-interrupted")).to_have_count(0)
    # the generated character's greeting, the first reply, the regenerated one
    expect(page.locator(".message.role-assistant")).to_have_count(3)

    page.get_by_role("button", name="Memories").click()
    expect(page.get_by_role("complementary", name="Memories")).to_be_visible()
    tab.shot("05-memories")

    # The same page on a phone.
    page.set_viewport_size({"width": 360, "height": 740})
    tab.assert_fits()
    page.get_by_role("button", name="Close memories").click()
    tab.assert_fits()
    tab.shot("06-chat-360")
    page.get_by_role("link", name="Characters").click()
    expect(page.locator(".character-card")).to_have_count(1)
    tab.assert_fits()
    tab.shot("07-characters-360")


def test_group_turn_streams_replies_side_by_side(tab: Tab, server: Server) -> None:
    page = tab.page
    name = username("bea")
    token = server.register(name)
    for character in ("Old Tom", "林黛玉"):
        r = server.call(token, "POST", "/api/characters", json={"name": character})
        assert r.status_code == 201, r.text
    tab.log_in(name)
    page.get_by_role("link", name="Groups").click()
    page.get_by_label("Group name").fill("The tavern")
    page.get_by_label("Old Tom").check()
    page.get_by_label("林黛玉").check()
    expect(page.get_by_label("Who answers")).to_have_value("moderator")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", name="The tavern")).to_be_visible()

    box = page.get_by_label("Message to The tavern")
    box.fill("A storm is coming. [[fake:tps=10]]")
    box.press("Enter")
    note = page.locator(".moderator-note")
    expect(note).to_contain_text("Moderator")
    expect(note.locator(".chosen")).to_have_text(
        re.compile(r"^chose (Old Tom and 林黛玉|林黛玉 and Old Tom)$")  # in the moderator's order
    )
    expect(note.locator(".reason")).not_to_be_empty()

    # Both replies are on screen and still growing at the same time.
    growing = ".turn .message.streaming .text"
    page.wait_for_function(
        f"[...document.querySelectorAll('{growing}')].filter(e => e.textContent.length > 8)"
        ".length === 2"
    )
    first = page.locator(growing).evaluate_all("els => els.map(e => e.textContent.length)")
    page.wait_for_function(
        f"(before) => {{ const now = [...document.querySelectorAll('{growing}')]"
        ".map(e => e.textContent.length);"
        " return now.length === 2 && now[0] > before[0] && now[1] > before[1]; }",
        arg=first,
    )
    boxes = [page.locator(".turn .message").nth(i).bounding_box() for i in range(2)]
    assert boxes[0] and boxes[1] and boxes[0]["y"] == boxes[1]["y"]  # side by side
    assert boxes[0]["x"] < boxes[1]["x"]
    tab.shot("08-group-streaming")
    expect(page.locator(".turn .message.streaming")).to_have_count(0, timeout=60_000)
    expect(page.locator(".turn .message.status-complete")).to_have_count(2)
    tab.shot("09-group")
    page.set_viewport_size({"width": 360, "height": 740})
    tab.assert_fits()
    tab.shot("10-group-360")


def test_admin_page_for_admins_only(tab: Tab, server: Server) -> None:
    page = tab.page
    member = username("cy")
    member_token = server.register(member)

    tab.log_in(member)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    tab.open("#/admin")
    expect(page.get_by_role("alert")).to_contain_text("Administrators only")
    assert server.call(member_token, "GET", "/api/admin/users").status_code == 403
    tab.shot("11-admin-refused")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    tab.log_in(ADMIN[0], ADMIN[1])
    page.get_by_role("link", name="Admin").click()
    row = page.locator("tr", has=page.get_by_role("rowheader", name=member, exact=True))
    expect(row).to_contain_text("Active")
    expect(page.get_by_role("heading", name="Background tasks")).to_be_visible()
    expect(page.get_by_role("heading", name="LLM")).to_be_visible()

    limit = page.get_by_label("Concurrent LLM calls (1–1000)")
    limit.fill("32")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".stat", has_text="Limit").locator(".stat-value")).to_have_text("32")
    admin_token = server.http.post(
        "/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
    ).json()["token"]
    llm = server.call(admin_token, "GET", "/api/admin/llm").json()
    assert llm["limiter"]["total"] == 32

    row.get_by_role("button", name=f"Disable {member}").click()
    expect(row).to_contain_text("Disabled")
    assert server.call(member_token, "GET", "/api/me").status_code == 401  # tokens revoked
    tab.shot("12-admin", full_page=True)
    row.get_by_role("button", name=f"Enable {member}").click()
    expect(row).to_contain_text("Active")
    page.set_viewport_size({"width": 360, "height": 740})
    tab.assert_fits()


def test_markup_from_users_and_models_is_shown_as_text(tab: Tab, server: Server) -> None:
    page = tab.page
    evil = "<img src=x onerror=alert(1)>"
    name = username("dee")
    server.register(name)
    tab.log_in(name)
    page.get_by_role("link", name="New character").first.click()
    page.get_by_label("Name").fill(evil)
    page.get_by_role("button", name="Create empty").click()
    expect(page.get_by_role("heading", name=evil)).to_be_visible()
    page.get_by_role("link", name="Characters").click()
    expect(page.locator(".character-card h2")).to_have_text(evil)
    page.get_by_role("link", name=f"Chat with {evil}").click()

    box = page.get_by_label(f"Message to {evil}")
    said = "<script>window.__xss = 1</script><b>bold</b><img src=y onerror=alert(2)>"
    box.fill(f"<i>hi</i> [[fake:say={said}]]")
    box.press("Enter")
    reply = page.locator(".message.role-assistant .text").last
    expect(reply).to_have_text(f"[fake] {said}")
    expect(page.locator(".message.role-user .text")).to_have_text(f"<i>hi</i> [[fake:say={said}]]")
    expect(page.locator(".chat-header h1")).to_have_text(evil)
    page.reload()  # the stored reply, from history
    expect(page.locator(".message.role-assistant .text").last).to_have_text(f"[fake] {said}")
    for selector in ("main img", "main script", "main b", "main i"):
        expect(page.locator(selector)).to_have_count(0)
    assert page.evaluate("window.__xss") is None
    assert tab.dialogs == []
    tab.shot("13-markup-as-text")


def test_tree_controls_follow_the_tree_fields(tab: Tab, server: Server) -> None:
    """Alternatives, edit and delete are hidden when messages lack `parent_id`/`sibling_*` and
    shown when they carry them (here removed or added in flight, whatever this server sends);
    "Send as new branch" only when the server documents the branch route."""
    page = tab.page
    name = username("eve")
    token = server.register(name)
    character = server.call(token, "POST", "/api/characters", json={"name": "Mira"}).json()
    sent = server.call(token, "POST", f"/api/characters/{character['id']}/chat",
                       json={"content": "Hello"})
    assert sent.status_code == 200, sent.text
    paths = server.http.get("/openapi.json").json()["paths"]
    has_branch = any(p.endswith("/chat/messages/{message_id}/branch") for p in paths)
    tree_fields = ("parent_id", "sibling_index", "sibling_count")

    def without_tree_fields(route: Any) -> None:
        page_json = route.fetch().json()
        for message in page_json["items"]:
            for key in tree_fields:
                message.pop(key, None)
        route.fulfill(json=page_json)

    def with_tree_fields(route: Any) -> None:
        page_json = route.fetch().json()
        parent = None
        for message in page_json["items"]:
            alternatives = 2 if message["role"] == "assistant" else 1
            message.update(parent_id=parent, sibling_index=0, sibling_count=alternatives)
            parent = message["id"]
        route.fulfill(json=page_json)

    history = "**/api/characters/*/chat/messages?*"
    page.route(history, without_tree_fields)
    tab.log_in(name)
    tab.open(f"#/chat/{character['id']}")
    expect(page.locator(".message")).to_have_count(2)
    expect(page.get_by_role("button", name="Copy this message")).to_have_count(2)
    for control in ("Edit this message", "Delete this message", "Next alternative"):
        expect(page.get_by_role("button", name=control)).to_have_count(0)

    page.unroute(history)
    page.route(history, with_tree_fields)
    page.reload()
    expect(page.get_by_role("button", name="Edit this message")).to_have_count(2)
    expect(page.get_by_role("button", name="Delete this message")).to_have_count(2)
    alternatives = page.get_by_role("group", name="Alternatives")
    expect(alternatives).to_have_count(1)
    expect(alternatives).to_contain_text("1/2")
    expect(alternatives.get_by_role("button", name="Previous alternative")).to_be_disabled()
    expect(alternatives.get_by_role("button", name="Next alternative")).to_be_enabled()
    page.get_by_role("button", name="Edit this message").first.click()
    expect(page.get_by_label("Edit message")).to_have_value("Hello")
    expect(page.get_by_role("button", name="Send as new branch")).to_have_count(int(has_branch))
    page.keyboard.press("Escape")
    expect(page.get_by_label("Edit message")).to_have_count(0)


def test_alternatives_edit_and_delete_on_a_real_tree(tab: Tab, server: Server) -> None:
    """Against a server with conversation trees: ‹ 2/2 › switches the reply shown (select),
    Edit changes a message in place, Delete removes a reply and its alternative takes its place."""
    paths = server.http.get("/openapi.json").json()["paths"]
    if not any(p.endswith("/chat/import") for p in paths):
        pytest.skip("this server has no conversation trees yet (no .../chat/import route)")
    page = tab.page
    name = username("hal")
    token = server.register(name)
    character = server.call(token, "POST", "/api/characters", json={"name": "Mira"}).json()
    tree = {
        "format": "fastnpc-conversation",
        "version": 1,
        "messages": [
            {"id": "1", "role": "user", "content": "Hi", "parent_id": None},
            {"id": "2", "role": "assistant", "content": "First answer", "parent_id": "1"},
            {"id": "3", "role": "assistant", "content": "Second answer", "parent_id": "1"},
        ],
        "active_leaf_id": "3",
    }
    r = server.call(token, "POST", f"/api/characters/{character['id']}/chat/import", json=tree)
    assert r.status_code == 200, r.text
    tab.log_in(name)
    tab.open(f"#/chat/{character['id']}")
    reply = page.locator(".message.role-assistant")
    expect(reply.locator(".text")).to_have_text("Second answer")
    expect(reply.get_by_role("group", name="Alternatives")).to_contain_text("2/2")
    reply.get_by_role("button", name="Previous alternative").click()
    expect(reply.locator(".text")).to_have_text("First answer")
    expect(reply.get_by_role("group", name="Alternatives")).to_contain_text("1/2")
    tab.shot("15-alternatives")

    user = page.locator(".message.role-user")
    user.get_by_role("button", name="Edit this message").click()
    page.get_by_label("Edit message").fill("Hello there")
    page.get_by_role("button", name="Save").click()
    expect(user.locator(".text")).to_have_text("Hello there")
    expect(user.locator(".meta")).to_contain_text("edited")

    reply.get_by_role("button", name="Delete this message").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(reply.locator(".text")).to_have_text("Second answer")
    expect(page.get_by_role("group", name="Alternatives")).to_have_count(0)
    page.reload()
    expect(page.locator(".message.role-user .text")).to_have_text("Hello there")
    expect(page.locator(".message.role-assistant .text")).to_have_text("Second answer")


def test_api_errors_are_shown_as_their_human_message(tab: Tab, server: Server) -> None:
    page = tab.page
    taken = username("fay")
    server.register(taken)
    tab.open("#/login")
    page.get_by_label("Username").fill(taken)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Username").fill(taken)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_have_text("That username is taken.")
    assert "{" not in (page.get_by_role("alert").text_content() or "")  # never raw JSON
    tab.shot("14-error-message")
    # The browser itself logs the two refused requests; nothing else may be logged.
    refused = [e for e in tab.errors if "status of 401" in e or "status of 409" in e]
    assert len(refused) == len(tab.errors) <= 2, tab.errors
    tab.errors.clear()


def test_a_dropped_stream_says_what_happened(tab: Tab, server: Server) -> None:
    """A stream cut before its terminal event (here: the answer ends after one delta) leaves the
    partial text on screen and says what happened; the box is usable again."""
    page = tab.page
    name = username("gus")
    token = server.register(name)
    character = server.call(token, "POST", "/api/characters", json={"name": "Mira"}).json()
    tab.log_in(name)
    tab.open(f"#/chat/{character['id']}")
    user_message = {"id": "999", "role": "user", "content": "Hello", "character_id": None,
                    "status": "complete", "created_at": "2026-11-30T12:00:00Z"}
    cut = (
        f"id: 1\nevent: user_message\ndata: {json.dumps(user_message)}\n\n"
        'id: 2\nevent: delta\ndata: {"text": "[fake] Half a sen"}\n\n'
    )

    def cut_short(route: Any) -> None:
        if route.request.method == "POST":
            route.fulfill(status=200, content_type="text/event-stream", body=cut)
        else:
            route.fallback()

    page.route(f"**/api/characters/{character['id']}/chat", cut_short)
    box = page.get_by_label("Message to Mira")
    box.fill("Hello")
    box.press("Enter")
    expect(page.locator(".message.role-user .text")).to_have_text("Hello")
    expect(page.locator(".message.role-assistant .text")).to_have_text("[fake] Half a sen")
    expect(page.get_by_role("status").filter(has_text="connection dropped")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_sse_parser_handles_any_chunking(tab: Tab) -> None:
    """The page's SSE parser (app/web/sse.js), run in the browser: events split across reads at
    every position, CRLF split between reads, comments, multi-line data, ids."""
    page = tab.page
    tab.open("#/login")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    stream = (
        ": ping\r\n\r\nid: 1\r\nevent: delta\r\ndata: {\"text\": \"龍 a\\nb\"}\r\n\r\n"
        "id: 2\nevent: x\ndata: one\ndata: two\n\nevent: done\ndata: {}\n\n"
    )
    result = page.evaluate(
        """async (text) => {
          const src = document.querySelector('script[type=module]').src;
          const { SSEParser } = await import(src.replace('app.js', 'sse.js'));
          const runs = [];
          for (let cut = 0; cut <= text.length; cut++) {
            const parser = new SSEParser();
            runs.push([...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))]);
          }
          const byChar = new SSEParser();
          runs.push([...text].flatMap((c) => byChar.push(c)));
          return runs;
        }""",
        stream,
    )
    expected = [
        {"event": "delta", "data": '{"text": "龍 a\\nb"}', "id": "1"},
        {"event": "x", "data": "one\ntwo", "id": "2"},
        {"event": "done", "data": "{}", "id": "2"},
    ]
    assert len(result) == len(stream) + 2
    for run in result:
        assert run == expected


def test_edit_and_delete_a_character(tab: Tab, server: Server) -> None:
    page = tab.page
    name = username("ivy")
    token = server.register(name)
    character = server.call(token, "POST", "/api/characters", json={"name": "王熙凤"}).json()
    tab.log_in(name)
    page.get_by_role("link", name="Profile of 王熙凤").click()
    expect(page.locator(".category.pending")).to_have_count(8)  # created empty: nothing written
    page.get_by_role("button", name="Edit", exact=True).click()
    page.get_by_label("Character name").fill("王熙凤 Wang Xifeng")
    page.get_by_role("group", name="Identity").get_by_label("Age").fill("二十岁")
    page.get_by_role("group", name="Backstory").get_by_label("Experiences (one per line)").fill(
        "ran the household\nlent money at interest"
    )
    tab.shot("16-edit-character")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="王熙凤 Wang Xifeng")).to_be_visible()
    identity = page.locator('.category[data-category="identity"]')
    expect(identity).to_contain_text("二十岁")
    expect(page.locator('.category[data-category="backstory"] li')).to_have_text(
        ["ran the household", "lent money at interest"]
    )
    stored = server.call(token, "GET", f"/api/characters/{character['id']}").json()
    assert stored["name"] == "王熙凤 Wang Xifeng"
    assert stored["profile"]["identity"]["age"] == "二十岁"
    assert stored["profile"]["backstory"]["experiences"] == [
        "ran the household", "lent money at interest"
    ]

    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete 王熙凤 Wang Xifeng?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name="王熙凤 Wang Xifeng")).to_be_visible()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="No characters yet")).to_be_visible()
    assert server.call(token, "GET", f"/api/characters/{character['id']}").status_code == 404


def test_memories_of_a_conversation(tab: Tab, server: Server) -> None:
    """"Compress now" summarises older messages in the background; the panel shows the memories
    as they arrive (the server keeps the newest two messages uncompressed here)."""
    page = tab.page
    name = username("jo")
    token = server.register(name)
    character = server.call(token, "POST", "/api/characters", json={"name": "Mira"}).json()
    for text in ("The lighthouse went dark.", "Who was on watch?", "Tell me about the keeper."):
        r = server.call(token, "POST", f"/api/characters/{character['id']}/chat",
                        json={"content": text})
        assert r.status_code == 200, r.text
    tab.log_in(name)
    tab.open(f"#/chat/{character['id']}")
    page.get_by_role("button", name="Memories").click()
    panel = page.get_by_role("complementary", name="Memories")
    expect(panel).to_contain_text("No memories yet")
    panel.get_by_role("button", name="Compress now").click()
    expect(panel.locator(".memory")).not_to_have_count(0, timeout=30_000)
    expect(panel.locator(".memory .badge").first).to_have_text(re.compile("Short-term|Long-term"))
    assert (panel.locator(".memory p").first.text_content() or "").strip()
    tab.shot("17-memories")
