"""The prompt text the server writes, in Chinese and English side by side.

One `PromptTexts` per language; `texts_for(language)` picks it (the language comes from
`greetings.character_language` for a character, `text_language` for generation source text).
Format fields are named (``{name}``); machine-read markers (``CANDIDATES:``, the memory
``MEMORY SUMMARY``/``MEMORY MERGE`` headers in English) stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.services.greetings import text_language
from app.services.profile import DESCRIPTIONS
from storage.records import Language

__all__ = ["EN", "ZH", "PromptTexts", "group_language", "texts_for", "text_language"]


@dataclass(frozen=True)
class PromptTexts:
    """Every piece of server-written prompt text of one language."""

    # the character's system prompt (prompts.character_system_prompt)
    profile_intro: str
    long_term_memories: str
    recent_memories: str
    persona_name: str
    persona_description: str
    reply_rule: str
    # the group speaker's frame (groups)
    group_frame: str
    nobody_else: str
    list_separator: str
    listening: str
    someone: str
    # the moderator (groups.moderator_prompt)
    moderator_system: str
    moderator_task_reply: str
    moderator_task_continue: str
    moderator_characters: str
    moderator_recent: str
    moderator_none: str
    moderator_new_message: str
    moderator_silent: str
    moderator_muted: str
    moderator_just_spoke: str
    moderator_note_muted: str
    moderator_note_spoke: str
    moderator_no_details: str
    user_label: str
    # memory compression (memory)
    memory_direct_setting: str
    memory_group_setting: str
    memory_summary_system: str
    memory_summary_header: str
    memory_merge_system: str
    memory_merge_header: str
    assistant_label: str
    # character generation (prompts.generation_prompt, characters)
    generation_system: str
    generation_name: str
    generation_category: str
    generation_source: str
    generation_known: str
    greeting_field: str
    """Added to the generation prompt of the category that also carries the greeting."""
    category_descriptions: Mapping[str, str]
    """What each profile category holds (the generation prompt's ``Category:`` line)."""


EN = PromptTexts(
    profile_intro="You are {name}. Stay in character at all times.",
    long_term_memories="Long-term memories:",
    recent_memories="Recent memories:",
    persona_name="You are talking to {name}.",
    persona_description="About {name}: {description}",
    reply_rule=(
        "Reply as the character, in the character's voice. Do not describe yourself as an AI."
    ),
    group_frame=(
        'This is the group conversation "{group}" between the user, {name} and {others}. '
        "Lines of the other characters come prefixed with their names. Reply only as {name}, "
        "with your own line: never speak for the others, and do not prefix your reply with "
        "your name."
    ),
    nobody_else="nobody else",
    list_separator=", ",
    listening=(
        "The user says nothing this turn and listens: carry the conversation on with the others."
    ),
    someone="Someone",
    moderator_system=(
        "You moderate a group role-play chat. Choose which characters {task}, most relevant "
        "first: between 1 and {limit} of them, only ids from the CANDIDATES line, each at "
        'most once. Answer with JSON: {{"character_ids": [...], "reason": "..."}}.'
    ),
    moderator_task_reply="reply to the user's new message",
    moderator_task_continue="speak next in the conversation",
    moderator_characters='Group "{group}". Characters:',
    moderator_recent="Recent conversation:",
    moderator_none="(none)",
    moderator_new_message="The user's new message:",
    moderator_silent="The user says nothing this turn: the characters carry on among themselves.",
    moderator_muted="Muted, never choose",
    moderator_just_spoke="Just spoke, do not choose again",
    moderator_note_muted=" (muted)",
    moderator_note_spoke=" (just spoke)",
    moderator_no_details="no profile details",
    user_label="User",
    memory_direct_setting="a one-to-one conversation between the user and {name}",
    memory_group_setting='the group conversation "{group}" between the user, {name} and {others}',
    memory_summary_system=(
        "You keep the memory of {name}, a role-play character. Summarise the excerpt of "
        "{setting} into at most {limit} short memory notes written from {name}'s point of view: "
        "facts learned about the user and the others, promises, events, feelings. Each note is "
        "one sentence with an importance from 1 (trivia) to 5 (essential). Answer with JSON only."
    ),
    memory_summary_header="MEMORY SUMMARY for {name}",
    memory_merge_system=(
        "You keep the long-term memory of {name}, a role-play character. Merge the memories "
        "below into at most {limit} long-term memories: remove duplicates, combine related "
        "notes, keep the most important ones. Each is one sentence with an importance from 1 "
        "(trivia) to 5 (essential). Answer with JSON only."
    ),
    memory_merge_header="MEMORY MERGE for {name} (importance in brackets)",
    assistant_label="Assistant",
    generation_system=(
        "You design characters for interactive role-play. Answer with one JSON object that "
        "matches the given schema exactly, with rich, specific, consistent content. Write "
        "every text value in English."
    ),
    generation_name="Character name: {name}",
    generation_category="Category: {category} — {description}",
    generation_source="Ground every detail in this source material:\n{source}",
    generation_known="Already known about the character (stay consistent):\n{known}",
    greeting_field=(
        "Also fill `greeting`: the first message the character says when a user opens a "
        "conversation with them, in character, one or two short paragraphs, addressing the "
        "user as {{user}}."
    ),
    category_descriptions=DESCRIPTIONS,
)

ZH = PromptTexts(
    profile_intro="你是{name}。始终保持角色身份。",
    long_term_memories="长期记忆：",
    recent_memories="近期记忆：",
    persona_name="与你交谈的是{name}。",
    persona_description="关于{name}：{description}",
    reply_rule="以角色的身份、用角色的口吻回复。不要说自己是人工智能。",
    group_frame=(
        "这是群聊「{group}」，参与者有用户、{name}和{others}。其他角色的发言前会带上他们的名字。"
        "只以{name}的身份说你自己的话：不要替别人说话，回复前也不要加上自己的名字。"
    ),
    nobody_else="没有其他人",
    list_separator="、",
    listening="用户这一轮不说话，只是在听：请与其他人继续对话。",
    someone="某人",
    moderator_system=(
        "你是一个群聊角色扮演的主持人。选出{task}的角色，最相关的在前：1到{limit}个，"
        "只能用 CANDIDATES 一行中的 id，每个最多一次。只用 JSON 回答："
        '{{"character_ids": [...], "reason": "..."}}。'
    ),
    moderator_task_reply="回复用户新消息",
    moderator_task_continue="在对话中接着发言",
    moderator_characters="群聊「{group}」。角色：",
    moderator_recent="最近的对话：",
    moderator_none="（无）",
    moderator_new_message="用户的新消息：",
    moderator_silent="用户这一轮不说话：角色们自己继续聊。",
    moderator_muted="已禁言，不要选择",
    moderator_just_spoke="刚刚发过言，不要再选",
    moderator_note_muted="（已禁言）",
    moderator_note_spoke="（刚发过言）",
    moderator_no_details="没有角色资料",
    user_label="用户",
    memory_direct_setting="用户与{name}的一对一对话",
    memory_group_setting="群聊「{group}」（参与者：用户、{name}和{others}）",
    memory_summary_system=(
        "你负责保存角色扮演角色{name}的记忆。把{setting}的这段摘录总结成最多{limit}条简短的记忆，"
        "从{name}的视角书写：了解到的关于用户和其他人的事实、承诺、事件、感受。每条记忆是一句话，"
        "并给出重要程度，从1（琐事）到5（至关重要）。只用 JSON 回答，记忆用中文书写。"
    ),
    memory_summary_header="MEMORY SUMMARY for {name}（记忆摘要）",
    memory_merge_system=(
        "你负责保存角色扮演角色{name}的长期记忆。把下面的记忆合并成最多{limit}条长期记忆："
        "去掉重复，合并相关的记忆，保留最重要的。每条是一句话，重要程度从1（琐事）到5（至关重要）。"
        "只用 JSON 回答，记忆用中文书写。"
    ),
    memory_merge_header="MEMORY MERGE for {name}（记忆合并，括号内为重要程度）",
    assistant_label="助手",
    generation_system=(
        "你为互动角色扮演设计角色。只回答一个完全符合给定 schema 的 JSON 对象，内容丰富、具体、"
        "前后一致。所有文本值都用中文书写。"
    ),
    generation_name="角色名：{name}",
    generation_category="Category: {category} — {description}",
    generation_source="所有细节都要以这份资料为依据：\n{source}",
    generation_known="已知的角色信息（保持一致）：\n{known}",
    greeting_field=(
        "同时填写 `greeting`：用户开启对话时角色说的第一句话，保持角色身份，一两段简短的话，"
        "用 {{user}} 称呼用户。"
    ),
    category_descriptions={
        "identity": "角色是谁：姓名、年龄、性别、职业、背景、外貌、称号",
        "personality": "性格特点、价值观、情绪与说话风格、喜好、厌恶、动机",
        "backstory": "出身、重要经历、现状、人际关系、一个秘密",
        "abilities": "角色知道什么、会做什么、不能做什么",
        "dialogue": "角色怎么说话：语气、语言风格、限制、互动方式",
        "tasks": "角色在对话中想要什么：目标、意图、禁区、触发点",
        "world": "角色所处的世界：时代、环境、社会秩序、规则",
        "system": "给模型的角色扮演规则：角色规则、回复长度、知识截止、安全注意",
    },
)

_BY_LANGUAGE: dict[Language, PromptTexts] = {"en": EN, "zh": ZH}


def texts_for(language: Language) -> PromptTexts:
    """The prompt texts of ``language``."""
    return _BY_LANGUAGE[language]


def group_language(languages: Sequence[Language]) -> Language:
    """The language of prompts about several characters (a group's moderator): the one most
    of them speak, the first member's on a tie; English for none."""
    if not languages:
        return "en"
    zh = sum(1 for lang in languages if lang == "zh")
    en = len(languages) - zh
    if zh == en:
        return languages[0]
    return "zh" if zh > en else "en"
