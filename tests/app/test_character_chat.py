"""A character's card fields at work in chat through HTTP: the greeting and its alternates
opening an empty conversation, macros, the persona in prompts, per-character model settings
and fallbacks, and the prompt language."""

from __future__ import annotations

from typing import Any

import trio

from app.demo import CHINESE_CARD
from tests.app.harness import Live, Session, live_server, make_settings


async def greeted(s: Session, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Mira",
        "greeting": "Hello {{USER}}, I am {{char}}.",
        "alternate_greetings": ["Oh, {{user}} again.", "{{Char}} waves."],
    } | fields
    r = await s.request("POST", "/api/characters", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def history(s: Session, cid: str) -> list[dict[str, Any]]:
    r = await s.request("GET", f"/api/characters/{cid}/chat/messages")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_greeting_and_alternates_open_the_conversation(live: Live, fake: Any) -> None:
    alice = await live.register("alice")
    character = await greeted(alice)
    cid = character["id"]
    items = await history(alice, cid)
    assert len(items) == 1
    first = items[0]
    assert first["content"] == "Hello alice, I am Mira."
    assert first["role"] == "assistant" and first["status"] == "complete"
    assert first["character_id"] == cid and first["parent_id"] is None
    assert (first["sibling_index"], first["sibling_count"]) == (0, 3)
    assert await history(alice, cid) == items  # stored once

    # the alternates are siblings: selecting one makes it the opening message
    r = await alice.request("GET", f"/api/characters/{cid}/chat/export")
    assert r.status_code == 200, r.text
    roots = [m for m in r.json()["messages"] if m["parent_id"] is None]
    assert [m["content"] for m in roots] == [
        "Hello alice, I am Mira.",
        "Oh, alice again.",
        "Mira waves.",
    ]
    r = await alice.request("POST", f"/api/characters/{cid}/chat/messages/{roots[2]['id']}/select")
    assert r.status_code == 200, r.text
    assert [m["content"] for m in r.json()["items"]] == ["Mira waves."]

    # a reply follows the greeting, which the model sees as the character's first line
    r = await alice.request("POST", f"/api/characters/{cid}/chat", json={"content": "Hi!"})
    assert r.status_code == 200, r.text
    assert [m["content"] for m in (await history(alice, cid))[:2]] == ["Mira waves.", "Hi!"]
    prompt = fake.requests[-1].messages
    assert prompt[-2] == {"role": "assistant", "content": "Mira waves."}


async def test_first_message_sent_is_greeted_once_under_races(live: Live) -> None:
    alice = await live.register()
    await alice.request("PUT", "/api/me/persona", json={"name": "Bao"})
    character = await greeted(alice, alternate_greetings=[])
    cid = character["id"]

    async def read() -> None:
        await history(alice, cid)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(read)
    items = await history(alice, cid)
    assert [m["content"] for m in items] == ["Hello Bao, I am Mira."]
    assert items[0]["sibling_count"] == 1


async def test_no_greeting_no_opening(live: Live) -> None:
    alice = await live.register()
    character = await alice.character()
    assert await history(alice, character["id"]) == []
    r = await alice.request(
        "POST", f"/api/characters/{character['id']}/chat", json={"content": "Hi"}
    )
    assert r.status_code == 200, r.text
    assert [m["role"] for m in await history(alice, character["id"])] == ["user", "assistant"]


async def test_first_message_sent_stores_the_greeting_first(live: Live) -> None:
    alice = await live.register()
    character = await greeted(alice, alternate_greetings=[])
    r = await alice.request(
        "POST", f"/api/characters/{character['id']}/chat", json={"content": "Hi"}
    )
    assert r.status_code == 200, r.text
    items = await history(alice, character["id"])
    assert [m["content"] for m in items[:2]] == ["Hello alice, I am Mira.", "Hi"]


async def test_persona_and_macros_reach_the_prompt(live: Live, fake: Any) -> None:
    alice = await live.register()
    r = await alice.request(
        "PUT", "/api/me/persona", json={"name": "Bao", "description": "A wandering scholar."}
    )
    assert r.status_code == 200, r.text
    r = await alice.request(
        "POST",
        "/api/characters",
        json={
            "name": "Mira",
            "profile": {"tasks": {"goal": "Make {{USER}} trust {{char}}."}},
        },
    )
    cid = r.json()["id"]
    r = await alice.request("POST", f"/api/characters/{cid}/chat", json={"content": "Hi"})
    assert r.status_code == 200, r.text
    system = fake.requests[-1].messages[0]["content"]
    assert "Make Bao trust Mira." in system and "{{" not in system
    assert "You are talking to Bao." in system
    assert "About Bao: A wandering scholar." in system

    # in a group too, for every speaker
    other = await alice.character("Bram")
    gid = (await alice.group("Inn", [{"id": cid}, other]))["id"]
    since = len(fake.requests)
    r = await alice.request("POST", f"/api/groups/{gid}/messages", json={"content": "Hello"})
    assert r.status_code == 200, r.text
    systems = [q.messages[0]["content"] for q in fake.requests[since:]]
    assert len(systems) == 2
    assert all("You are talking to Bao." in s for s in systems)
    assert any("Make Bao trust Mira." in s for s in systems)


async def test_without_persona_the_username_fills_user(live: Live, fake: Any) -> None:
    alice = await live.register("alice")
    r = await alice.request(
        "POST", "/api/characters", json={"name": "Mira", "profile": {"tasks": {"goal": "{{user}}"}}}
    )
    r = await alice.request(
        "POST", f"/api/characters/{r.json()['id']}/chat", json={"content": "Hi"}
    )
    assert r.status_code == 200, r.text
    system = fake.requests[-1].messages[0]["content"]
    assert "- goal: alice" in system and "You are talking to alice." in system
    assert "About alice" not in system


CHINESE = {
    "name": "林黛玉",
    "greeting": "{{user}}，你来了。",
    "profile": {"identity": {"occupation": "贾府的表小姐"}},
}


async def test_a_chinese_character_gets_chinese_prompts(live: Live, fake: Any) -> None:
    alice = await live.register()
    await alice.request("PUT", "/api/me/persona", json={"name": "宝玉"})
    r = await alice.request("POST", "/api/characters", json=CHINESE)
    cid = r.json()["id"]
    assert (await history(alice, cid))[0]["content"] == "宝玉，你来了。"
    r = await alice.request("POST", f"/api/characters/{cid}/chat", json={"content": "妹妹好"})
    assert r.status_code == 200, r.text
    system = fake.requests[-1].messages[0]["content"]
    assert system.startswith("你是林黛玉。始终保持角色身份。")
    assert "与你交谈的是宝玉。" in system
    assert "以角色的身份" in system and "Stay in character" not in system

    # settings.language overrides the text
    r = await alice.request(
        "PATCH", f"/api/characters/{cid}", json={"settings": {"language": "en"}}
    )
    assert r.status_code == 200, r.text
    r = await alice.request("POST", f"/api/characters/{cid}/chat", json={"content": "再见"})
    assert fake.requests[-1].messages[0]["content"].startswith("You are 林黛玉.")

    # a group of Chinese characters: the speaker frame and the moderator are in Chinese
    r = await alice.request(
        "PATCH", f"/api/characters/{cid}", json={"settings": {"language": None}}
    )
    r = await alice.request("POST", "/api/characters", json={"name": "薛宝钗"})
    r = await alice.request(
        "POST", "/api/groups", json={"name": "大观园", "character_ids": [cid, r.json()["id"]]}
    )
    gid = r.json()["id"]
    since = len(fake.requests)
    r = await alice.request("POST", f"/api/groups/{gid}/messages", json={"content": "大家好"})
    assert r.status_code == 200, r.text
    calls = fake.requests[since:]
    moderator = [q for q in calls if "CANDIDATES:" in q.messages[-1]["content"]]
    assert len(moderator) == 1
    assert moderator[0].messages[0]["content"].startswith("你是一个群聊角色扮演的主持人")
    assert "群聊「大观园」。角色：" in moderator[0].messages[-1]["content"]
    speakers = [q for q in calls if q not in moderator]
    assert speakers and all("这是群聊「大观园」" in q.messages[0]["content"] for q in speakers)


async def test_generation_in_chinese_fills_a_chinese_greeting(live: Live, fake: Any) -> None:
    alice = await live.register()
    r = await alice.request(
        "POST",
        "/api/characters/generate",
        json={"name": "林黛玉", "source_text": "《红楼梦》中的人物，寄居贾府，才情出众。"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["greeting"]
    assert "greeting" not in body["profile"]["dialogue"]
    calls = fake.requests
    assert len(calls) == 8
    assert all("所有文本值都用中文书写" in q.messages[0]["content"] for q in calls)
    assert all(q.messages[-1]["content"].startswith("角色名：林黛玉") for q in calls)
    dialogue = [q for q in calls if "Category: dialogue " in q.messages[-1]["content"]]
    assert len(dialogue) == 1 and "同时填写 `greeting`" in dialogue[0].messages[-1]["content"]
    schema = dialogue[0].body["response_format"]["json_schema"]["schema"]
    assert "greeting" in schema["properties"]
    # the greeting opens the conversation
    items = await history(alice, body["id"])
    assert [m["content"] for m in items] == [body["greeting"]]


async def test_english_generation_prompt(live: Live, fake: Any) -> None:
    alice = await live.register()
    r = await alice.request("POST", "/api/characters/generate", json={"name": "Old Tom"})
    assert r.status_code == 201, r.text
    assert all("in English" in q.messages[0]["content"] for q in fake.requests)


async def test_character_model_and_temperature_reach_the_provider(live: Live, fake: Any) -> None:
    alice = await live.register()
    r = await alice.request(
        "POST",
        "/api/characters",
        json={"name": "Mira", "settings": {"model": "vendor/mira-1", "temperature": 0.3}},
    )
    cid = r.json()["id"]
    r = await alice.request("POST", f"/api/characters/{cid}/chat", json={"content": "Hi"})
    assert r.status_code == 200, r.text
    body = fake.requests[-1].body
    assert body["model"] == "vendor/mira-1" and body["temperature"] == 0.3
    assert "models" not in body
    assert r.json()["reply"]["model"] == "vendor/mira-1"

    r = await alice.request("POST", f"/api/characters/{cid}/chat/regenerate")
    assert r.status_code == 200, r.text
    body = fake.requests[-1].body
    assert (body["model"], body["temperature"]) == ("vendor/mira-1", 0.3)

    # without settings: the server's default model, no temperature sent
    plain = await alice.character("Bram")
    r = await alice.request("POST", f"/api/characters/{plain['id']}/chat", json={"content": "Hi"})
    body = fake.requests[-1].body
    assert body["model"] == live.services.settings.llm.model and "temperature" not in body
    assert "models" not in body


async def test_fallback_models_answer_when_the_first_fails(live: Live, fake: Any) -> None:
    alice = await live.register()
    settings = {"model": "vendor/a", "fallback_models": ["vendor/b", "vendor/c"]}
    r = await alice.request("POST", "/api/characters", json={"name": "Mira", "settings": settings})
    cid = r.json()["id"]
    r = await alice.request("POST", f"/api/characters/{cid}/chat", json={"content": "Hi"})
    assert r.status_code == 200, r.text
    assert fake.requests[-1].body["models"] == ["vendor/a", "vendor/b", "vendor/c"]
    assert r.json()["reply"]["model"] == "vendor/a"

    r = await alice.request(
        "POST", f"/api/characters/{cid}/chat", json={"content": "Hi [[fake:fail_model=vendor/a]]"}
    )
    assert r.status_code == 200, r.text
    reply = r.json()["reply"]
    assert reply["model"] == "vendor/b" and reply["status"] == "complete"
    items = await history(alice, cid)
    assert items[-1]["id"] == reply["id"] and items[-1]["model"] == "vendor/b"

    # streamed, and with two failing models
    async with alice.stream(
        f"/api/characters/{cid}/chat",
        {"content": "[[fake:fail_model=vendor/a]] [[fake:fail_model=vendor/b]]"},
    ) as sse:
        events = await sse.collect()
    replies = [data for name, data in events if name == "reply"]
    assert replies and replies[0]["model"] == "vendor/c"

    # every model fails: an error, nothing stored as a reply
    before = len(await history(alice, cid))
    content = "x " + " ".join(f"[[fake:fail_model=vendor/{m}]]" for m in "abc")
    r = await alice.request("POST", f"/api/characters/{cid}/chat", json={"content": content})
    assert r.status_code == 502, r.text
    assert len(await history(alice, cid)) == before + 1  # the user message only


async def test_group_replies_use_each_characters_settings(live: Live, fake: Any) -> None:
    alice = await live.register()
    ids = []
    for name, settings in (
        ("Mira", {"model": "vendor/a", "temperature": 1.5}),
        ("Bram", {"model": "vendor/x", "fallback_models": ["vendor/y"]}),
    ):
        r = await alice.request(
            "POST", "/api/characters", json={"name": name, "settings": settings}
        )
        ids.append(r.json()["id"])
    r = await alice.request(
        "POST", "/api/groups", json={"name": "Inn", "character_ids": ids, "strategy": "all"}
    )
    gid = r.json()["id"]
    since = len(fake.requests)
    r = await alice.request(
        "POST", f"/api/groups/{gid}/messages", json={"content": "Hi [[fake:fail_model=vendor/x]]"}
    )
    assert r.status_code == 200, r.text
    bodies = {q.body["model"]: q.body for q in fake.requests[since:]}
    assert bodies["vendor/a"]["temperature"] == 1.5 and "models" not in bodies["vendor/a"]
    assert bodies["vendor/x"]["models"] == ["vendor/x", "vendor/y"]
    models = {m["character_id"]: m["model"] for m in r.json()["replies"]}
    assert models == {ids[0]: "vendor/a", ids[1]: "vendor/y"}


async def test_settings_models_follow_fastnpc_models(db_url: str, fake: Any) -> None:
    settings = make_settings(db_url, fake.base_url, llm={"models": "good/one,good/two"})
    async with live_server(settings) as live:
        alice = await live.register()
        for bad in ({"model": "other/m"}, {"fallback_models": ["good/one", "other/m"]}):
            r = await alice.request(
                "POST", "/api/characters", json={"name": "Mira", "settings": bad}
            )
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "invalid_request"
            assert r.json()["error"]["details"][0]["loc"][0].startswith("settings.")
        r = await alice.request("GET", "/api/characters")
        assert r.json()["items"] == []
        good = {"model": "good/one", "fallback_models": ["good/two"]}
        r = await alice.request("POST", "/api/characters", json={"name": "Mira", "settings": good})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        r = await alice.request(
            "PATCH", f"/api/characters/{cid}", json={"settings": {"fallback_models": ["x/y"]}}
        )
        assert r.status_code == 400, r.text
        r = await alice.request("GET", f"/api/characters/{cid}")
        assert r.json()["settings"]["fallback_models"] == ["good/two"]


async def test_memory_summaries_of_a_chinese_character_are_asked_in_chinese(
    db_url: str, fake: Any
) -> None:
    settings = make_settings(db_url, fake.base_url, memory_trigger_messages=4, memory_keep_recent=2)
    async with live_server(settings) as live:
        alice = await live.register()
        r = await alice.request("POST", "/api/characters", json={"name": "林黛玉"})
        cid = r.json()["id"]
        for i in range(3):  # 6 messages > trigger 4
            r = await alice.request(
                "POST", f"/api/characters/{cid}/chat", json={"content": f"第{i}件事"}
            )
            assert r.status_code == 200, r.text
        with trio.fail_after(20):
            await live.services.memory.wait_idle()
        summaries = [
            q for q in fake.requests if q.messages[-1]["content"].startswith("MEMORY SUMMARY")
        ]
        assert len(summaries) == 1
        system, user = (m["content"] for m in summaries[0].messages)
        assert system.startswith("你负责保存角色扮演角色林黛玉的记忆")
        assert "用户与林黛玉的一对一对话" in system
        assert "用户: 第0件事" in user and "林黛玉: " in user


async def test_completing_a_chinese_card_generates_in_chinese(live: Live, fake: Any) -> None:
    alice = await live.register()
    r = await alice.request("POST", "/api/characters/import?complete=true", json=CHINESE_CARD)
    assert r.status_code == 201, r.text
    assert r.json()["greeting"] == CHINESE_CARD["data"]["first_mes"]
    assert fake.requests  # the empty categories were generated
    assert all("所有文本值都用中文书写" in q.messages[0]["content"] for q in fake.requests)
    assert all("greeting" not in q.messages[-1]["content"] for q in fake.requests)
