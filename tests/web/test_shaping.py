"""Shaping a conversation from the web page, in real headless Chromium against `fastnpc serve
--fake-llm`: search, add, pin, edit and delete memories; the persona the characters talk to;
a group's settings (strategy, muted members, talkativeness). Screens land in
tests/artifacts/web/ (2x-…)."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import ADMIN, Server, Tab
from tests.web.test_browser import username


def _add_memory(server: Server, token: str, conv: str, content: str, **fields: Any) -> str:
    r = server.call(token, "POST", f"{conv}/memories", json={"content": content, **fields})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _memories(server: Server, token: str, conv: str, query: str = "") -> list[dict[str, Any]]:
    r = server.call(token, "GET", f"{conv}/memories{query}")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_search_pin_edit_and_delete_memories(tab: Tab, server: Server) -> None:
    page = tab.page
    name = username("kay")
    token = server.register(name)
    character = server.call(token, "POST", "/api/characters", json={"name": "Mira"}).json()
    conv = f"/api/characters/{character['id']}/chat"
    _add_memory(server, token, conv, "Mira keeps a grey cat called Pepper.", importance=3)
    _add_memory(server, token, conv, "The lighthouse lamp went dark during the storm.",
                importance=2)
    _add_memory(server, token, conv, "灯塔的钥匙藏在船坞里。", importance=4)
    tab.log_in(name)
    tab.open(f"#/chat/{character['id']}")
    page.get_by_role("button", name="Memories").click()
    panel = page.get_by_role("complementary", name="Memories")
    texts = panel.locator(".memory .memory-text")
    expect(texts).to_have_count(3)
    expect(panel.get_by_role("status")).to_have_text("Newest first.")
    expect(texts.first).to_have_text("灯塔的钥匙藏在船坞里。")  # newest first without a query

    # A query: the page shows the server's ranking, numbered, most relevant first.
    for query, best in (("lighthouse storm", "The lighthouse lamp went dark during the storm."),
                        ("灯塔钥匙", "灯塔的钥匙藏在船坞里。")):
        panel.get_by_label("Search memories").fill(query)
        panel.get_by_role("button", name="Search").click()
        expect(panel.get_by_role("status")).to_contain_text(f"for “{query}”")
        expect(texts.first).to_have_text(best)
        ranked = [m["content"] for m in _memories(server, token, conv, f"?q={query}")]
        expect(texts).to_have_text(ranked)
        expect(panel.locator(".memory .rank").first).to_have_text("#1")
    tab.shot("20-memories-search")
    panel.get_by_label("Search memories").fill("")
    panel.get_by_role("button", name="Search").click()
    expect(texts).to_have_count(3)
    expect(panel.locator(".memory .rank")).to_have_count(0)

    # Add one of your own, important and pinned.
    panel.get_by_text("Add a memory").click()
    panel.get_by_label("New memory", exact=True).fill("The user is afraid of the sea.")
    panel.get_by_label("Importance of the new memory").select_option("5")
    panel.get_by_label("Pinned (always in the prompt)").check()
    panel.get_by_role("button", name="Add memory").click()
    mine = panel.locator(".memory", has_text="The user is afraid of the sea.")
    expect(mine.locator(".badge")).to_contain_text(["Pinned", "Yours"])
    stored = next(m for m in _memories(server, token, conv) if "afraid" in m["content"])
    assert (stored["origin"], stored["importance"], stored["pinned"]) == ("user", 5, True)

    # Pin, then unpin, the cat.
    cat = panel.locator(".memory", has_text="Pepper")
    cat.get_by_role("button", name="Pin this memory").click()
    expect(cat.locator(".badge-pinned")).to_have_text("Pinned")
    expect(cat.get_by_role("button", name="Unpin this memory")).to_have_attribute(
        "aria-pressed", "true")
    assert next(m for m in _memories(server, token, conv) if "Pepper" in m["content"])["pinned"]
    cat.get_by_role("button", name="Unpin this memory").click()
    expect(cat.locator(".badge-pinned")).to_have_count(0)
    assert not next(m for m in _memories(server, token, conv)
                    if "Pepper" in m["content"])["pinned"]

    # Edit its text and importance.
    cat.get_by_role("button", name="Edit this memory").click()
    panel.get_by_label("Edit memory").fill("Mira keeps a black cat called Pepper.")
    panel.locator(".memory-edit").get_by_label("Importance").select_option("1")
    tab.shot("21-memory-edit")
    panel.locator(".memory-edit").get_by_role("button", name="Save").click()
    edited = panel.locator(".memory", has_text="black cat")
    expect(edited.locator(".meta")).to_contain_text("importance 1")
    expect(edited.locator(".meta")).to_contain_text("edited")
    stored = next(m for m in _memories(server, token, conv) if "Pepper" in m["content"])
    assert stored["content"] == "Mira keeps a black cat called Pepper."
    assert stored["importance"] == 1 and stored["edited_at"] is not None

    # Delete it (after a cancel).
    edited.get_by_role("button", name="Delete this memory").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(edited).to_have_count(1)
    edited.get_by_role("button", name="Delete this memory").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(panel.locator(".memory", has_text="Pepper")).to_have_count(0)
    assert not [m for m in _memories(server, token, conv) if "Pepper" in m["content"]]
    expect(texts).to_have_count(3)
    tab.shot("22-memories")

    # A memory deleted elsewhere: pinning it shows the API's own message, in the panel.
    gone = panel.locator(".memory", has_text="lighthouse lamp")
    gone_id = gone.get_attribute("data-id")
    assert server.call(token, "DELETE", f"{conv}/memories/{gone_id}").status_code == 204
    gone.get_by_role("button", name="Pin this memory").click()
    alert = panel.get_by_role("alert")
    expect(alert).to_be_visible()
    assert "{" not in (alert.text_content() or "")  # the human message, never raw JSON
    message = server.call(token, "PATCH", f"{conv}/memories/{gone_id}", json={"pinned": True})
    expect(alert).to_have_text(re.compile(re.escape(message.json()["error"]["message"][1:])))
    # the browser logs the refused request itself; nothing else may be logged
    assert all("status of 404" in e for e in tab.errors), tab.errors
    tab.errors.clear()

    page.set_viewport_size({"width": 360, "height": 740})
    tab.assert_fits()


def test_group_memories_name_their_member(tab: Tab, server: Server) -> None:
    page = tab.page
    name = username("lou")
    token = server.register(name)
    ids = [server.call(token, "POST", "/api/characters", json={"name": n}).json()["id"]
           for n in ("Old Tom", "林黛玉")]
    group = server.call(token, "POST", "/api/groups",
                        json={"name": "Tea", "character_ids": ids}).json()
    tab.log_in(name)
    tab.open(f"#/groups/{group['id']}")
    page.get_by_role("button", name="Memories").click()
    panel = page.get_by_role("complementary", name="Memories")
    panel.get_by_text("Add a memory").click()
    panel.get_by_label("New memory", exact=True).fill("黛玉 likes plum blossoms.")
    panel.get_by_role("button", name="Add memory").click()
    expect(panel.get_by_role("alert")).to_have_text(re.compile("Choose whose memory"))
    panel.get_by_label("Whose memories").select_option(label="林黛玉")
    panel.get_by_role("button", name="Add memory").click()
    expect(panel.locator(".memory .memory-text")).to_have_text(["黛玉 likes plum blossoms."])
    panel.get_by_label("Whose memories").select_option(label="Everyone")
    expect(panel.locator(".memory .badge-whose")).to_have_text(["林黛玉"])
    conv = f"/api/groups/{group['id']}"
    assert [m["content"] for m in _memories(server, token, conv, f"?character_id={ids[1]}")] == [
        "黛玉 likes plum blossoms."]
    assert _memories(server, token, conv, f"?character_id={ids[0]}") == []


def test_persona_is_who_the_characters_talk_to(tab: Tab, server: Server) -> None:
    page = tab.page
    name = username("max")
    token = server.register(name)
    character = server.call(token, "POST", "/api/characters", json={
        "name": "Mira", "greeting": "Welcome aboard, {{user}}!"}).json()
    tab.log_in(name)
    page.get_by_role("link", name="Persona").click()
    expect(page.get_by_role("heading", name="Persona", exact=True)).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="No persona name yet")).to_contain_text(name)
    page.get_by_label("Persona name").fill("Captain Vane")
    page.get_by_label("Description").fill("A retired sea captain with a wooden leg. 怕水。")
    expect(page.locator(".counter")).to_have_text("44 / 2000")
    page.get_by_role("button", name="Save persona").click()
    expect(page.locator(".persona-current")).to_have_text("Characters talk to Captain Vane.")
    tab.shot("23-persona")
    assert server.call(token, "GET", "/api/me/persona").json() == {
        "name": "Captain Vane", "description": "A retired sea captain with a wooden leg. 怕水。"}
    page.reload()
    expect(page.get_by_label("Persona name")).to_have_value("Captain Vane")
    expect(page.get_by_label("Description")).to_have_value(
        "A retired sea captain with a wooden leg. 怕水。")

    # The character greets the persona ({{user}}), and your messages go by its name.
    tab.open(f"#/chat/{character['id']}")
    expect(page.locator(".message.role-assistant .text").first).to_have_text(
        "Welcome aboard, Captain Vane!")
    box = page.get_by_label("Message to Mira")
    box.fill("Hello")
    box.press("Enter")
    expect(page.locator(".message.role-user .author")).to_have_text("Captain Vane")
    expect(page.locator(".message.streaming")).to_have_count(0, timeout=30_000)
    tab.shot("24-persona-in-chat")
    # The prompt the model got (kept for admins) names the persona and carries its description.
    history = server.call(token, "GET", f"/api/characters/{character['id']}/chat/messages").json()
    reply_id = history["items"][-1]["id"]
    admin = server.http.post("/api/auth/login",
                             json={"username": ADMIN[0], "password": ADMIN[1]}).json()["token"]
    prompt = server.call(admin, "GET", f"/api/admin/messages/{reply_id}/prompt")
    assert prompt.status_code == 200, prompt.text
    said = json.dumps(prompt.json()["messages"], ensure_ascii=False)
    assert "Captain Vane" in said and "A retired sea captain with a wooden leg. 怕水。" in said

    # Clearing the name goes back to the username.
    page.get_by_role("link", name="Persona").click()
    page.get_by_label("Persona name").fill("")
    page.get_by_role("button", name="Save persona").click()
    expect(page.locator(".persona-current")).to_contain_text(f"characters talk to {name}")
    assert server.call(token, "GET", "/api/me/persona").json()["name"] is None


def test_group_settings_are_saved(tab: Tab, server: Server) -> None:
    page = tab.page
    name = username("ned")
    token = server.register(name)
    ids = {n: server.call(token, "POST", "/api/characters", json={"name": n}).json()["id"]
           for n in ("Old Tom", "林黛玉", "Mira")}
    group = server.call(token, "POST", "/api/groups", json={
        "name": "The tavern", "character_ids": [ids["Old Tom"], ids["林黛玉"]]}).json()
    tab.log_in(name)
    tab.open(f"#/groups/{group['id']}")
    page.get_by_role("button", name="Settings").click()
    settings = page.get_by_role("complementary", name="Group settings")
    expect(settings.get_by_label("Who answers")).to_have_value("moderator")
    settings.get_by_label("Group name").fill("The harbour tavern")
    settings.get_by_role("group", name="Members (2 to 8)").get_by_label("Mira").check()
    settings.get_by_label("Who answers").select_option("round_robin")
    settings.get_by_label("At most this many answer each turn").fill("1")
    settings.get_by_label("Mute Old Tom").check()
    settings.get_by_label("Talkativeness of 林黛玉").fill("0.8")
    settings.get_by_label("A character may answer right after itself").check()
    tab.shot("25-group-settings")
    settings.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("heading", name="The harbour tavern")).to_be_visible()
    expect(page.locator(".chat-header .subtitle")).to_have_text(
        "Old Tom (muted) · 林黛玉 · Mira — Take turns")

    stored = server.call(token, "GET", f"/api/groups/{group['id']}").json()
    assert stored["name"] == "The harbour tavern"
    assert stored["character_ids"] == [ids["Old Tom"], ids["林黛玉"], ids["Mira"]]
    assert (stored["strategy"], stored["max_speakers"]) == ("round_robin", 1)
    assert stored["muted_character_ids"] == [ids["Old Tom"]]
    assert stored["talkativeness"][ids["林黛玉"]] == 0.8
    assert stored["allow_self_responses"] is True

    page.reload()
    page.get_by_role("button", name="Settings").click()
    expect(settings.get_by_label("Group name")).to_have_value("The harbour tavern")
    expect(settings.get_by_label("Who answers")).to_have_value("round_robin")
    expect(settings.get_by_label("At most this many answer each turn")).to_have_value("1")
    expect(settings.get_by_label("Mute Old Tom")).to_be_checked()
    expect(settings.get_by_label("Mute 林黛玉")).not_to_be_checked()
    expect(settings.get_by_label("Talkativeness of 林黛玉")).to_have_value("0.8")
    expect(settings.get_by_label("A character may answer right after itself")).to_be_checked()
    page.get_by_role("button", name="Close group settings").click()

    # Taking turns, one at a time, never the muted member.
    box = page.get_by_label("Message to The harbour tavern")
    replies = page.locator(".message.role-assistant.status-complete")
    for turn in range(2):
        box.fill(f"Round {turn}")
        box.press("Enter")
        expect(page.locator(".moderator-note .chosen").last).to_have_text(
            re.compile("^chose (Mira|林黛玉)$"))
        expect(replies).to_have_count(turn + 1, timeout=30_000)
    authors = replies.locator(".author").all_text_contents()
    assert sorted(authors) == ["Mira", "林黛玉"], authors
    history = server.call(token, "GET", f"/api/groups/{group['id']}/messages").json()["items"]
    spoke = [m["character_id"] for m in history if m["role"] == "assistant"]
    assert sorted(spoke) == sorted([ids["Mira"], ids["林黛玉"]]), spoke

    # Fewer than two members: said on the page, nothing sent.
    page.get_by_role("button", name="Settings").click()
    for member in ("林黛玉", "Mira"):
        settings.get_by_role("group", name="Members (2 to 8)").get_by_label(member).uncheck()
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_role("alert")).to_have_text("Choose between 2 and 8 members.")
    page.set_viewport_size({"width": 360, "height": 740})
    tab.assert_fits()
    tab.shot("26-group-settings-360")


def test_choose_who_answers_a_turn(tab: Tab, server: Server) -> None:
    """A manual group answers only whom you ask (muted members too); in another group the
    choice is folded away and overrides the strategy for that turn."""
    page = tab.page
    name = username("oz")
    token = server.register(name)
    ids = {n: server.call(token, "POST", "/api/characters", json={"name": n}).json()["id"]
           for n in ("Old Tom", "林黛玉", "Mira")}
    group = server.call(token, "POST", "/api/groups", json={
        "name": "Quiet room", "character_ids": list(ids.values()), "strategy": "manual",
        "muted_character_ids": [ids["Mira"]]}).json()
    tab.log_in(name)
    tab.open(f"#/groups/{group['id']}")
    picker = page.get_by_role("group", name="Who answers this time")
    box = page.get_by_label("Message to Quiet room")
    box.fill("Anyone there?")
    box.press("Enter")
    expect(page.get_by_role("status").filter(has_text="choose who answers")).to_be_visible()
    expect(box).to_have_value("Anyone there?")  # nothing sent
    picker.get_by_label("Mira (muted)").check()
    picker.get_by_label("林黛玉").check()
    box.press("Enter")
    expect(page.locator(".moderator-note .chosen")).to_have_text("chose 林黛玉 and Mira")
    expect(page.locator(".turn .message.status-complete")).to_have_count(2, timeout=30_000)
    tab.shot("27-group-manual")
    history = server.call(token, "GET", f"/api/groups/{group['id']}/messages").json()["items"]
    # (stored as they finish: the two reply at once)
    assert sorted(m["character_id"] for m in history if m["role"] == "assistant") == sorted(
        [ids["林黛玉"], ids["Mira"]])

    assert server.call(token, "PATCH", f"/api/groups/{group['id']}",
                       json={"strategy": "all"}).status_code == 200
    page.reload()
    expect(picker).to_be_hidden()
    page.get_by_text("Choose who answers this time").click()
    picker.get_by_label("Old Tom").check()
    box.fill("Tom, only you.")
    box.press("Enter")
    expect(page.locator(".moderator-note .chosen").last).to_have_text("chose Old Tom")
    page.set_viewport_size({"width": 360, "height": 740})
    tab.assert_fits()
