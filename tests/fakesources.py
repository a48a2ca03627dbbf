# ruff: noqa: E501  (recorded-shape pages keep their long lines)
"""A fake MediaWiki API and a fake Baidu Baike on one local HTTP server (127.0.0.1, port 0).

    sources = await start_fake_sources(nursery)
    settings = sources.settings(timeout=2)  # FASTNPC_SOURCE_* pointing here

The MediaWiki API answers at ``/{lang}/w/api.php`` (``action=query`` with ``titles`` or
``generator=search``, ``action=parse`` by ``pageid``) in the shape of ``formatversion=2``; Baike
answers at ``/baike/item/<title>`` in its classic page layout. Pages of the shape the real
sources serve: a historical figure (苏轼), a name several people share (李白, with a
disambiguation page), a long page, and faults by title: 慢页面 never answers, 巨大页面 is 2 MB,
外链 redirects to another origin, anything else is missing. Every request is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import trio

from app.sources import SourceSettings
from llm.fake.http11 import Request, Responder, serve_connection

SLOW = "慢页面"
HUGE = "巨大页面"
OFF_ORIGIN = "外链"
LONG = "长页面"
GATED = "闸门"  # a search for it waits for `FakeSources.gate`

SU_SHI_WIKI_HTML = """<div class="mw-parser-output">
<div role="note" class="hatnote navigation-not-searchable">“东坡”重定向至此。关于其他用法，请见“东坡 (消歧义)”。</div>
<table class="infobox vcard"><tbody>
<tr><th colspan="2" class="infobox-above fn">苏轼</th></tr>
<tr><th scope="row" class="infobox-label">字</th><td class="infobox-data">子瞻、和仲</td></tr>
<tr><th scope="row" class="infobox-label">号</th><td class="infobox-data">东坡居士、铁冠道人</td></tr>
<tr><th scope="row" class="infobox-label">出生</th><td class="infobox-data">1037年1月8日<br>北宋<a href="/wiki/%E7%9C%89%E5%B7%9E">眉州</a>眉山</td></tr>
<tr><th scope="row" class="infobox-label">逝世</th><td class="infobox-data">1101年8月24日（64岁）<br>北宋常州</td></tr>
<tr><th scope="row" class="infobox-label">职业</th><td class="infobox-data">文学家、书画家、政治家</td></tr>
</tbody></table>
<p><b>苏轼</b>（1037年1月8日—1101年8月24日），字<b>子瞻</b>，又字<b>和仲</b>，号<b>东坡居士</b>，世称<b>苏东坡</b>，北宋眉州眉山人，文学家、书画家、政治家。<sup id="cite_ref-1" class="reference"><a href="#cite_note-1">[1]</a></sup></p>
<div class="mw-heading mw-heading2"><h2 id="生平">生平</h2><span class="mw-editsection"><span class="mw-editsection-bracket">[</span><a href="/w/index.php?title=%E8%8B%8F%E8%BD%BC&amp;action=edit&amp;section=1">编辑</a><span class="mw-editsection-bracket">]</span></span></div>
<p>嘉祐二年（1057年），苏轼与弟苏辙同登进士科，深得主考官欧阳修赏识。</p>
<p>元丰二年（1079年），因“乌台诗案”下狱，出狱后贬为黄州团练副使，在黄州城东的坡地开荒种田，自号东坡居士。</p>
<figure class="mw-default-size"><figcaption>赤壁赋（局部）</figcaption></figure>
<div class="mw-heading mw-heading2"><h2 id="文学成就">文学成就</h2></div>
<ul><li>词开豪放一派，与辛弃疾并称“苏辛”。</li><li>散文与欧阳修并称“欧苏”，为唐宋八大家之一。</li></ul>
<div class="mw-heading mw-heading2"><h2 id="参考文献">参考文献</h2></div>
<div class="reflist"><ol class="references"><li id="cite_note-1"><span class="reference-text">《宋史·苏轼传》</span></li></ol></div>
<div role="navigation" class="navbox"><table class="nowraplinks"><tr><td>唐宋八大家：韩愈 柳宗元 欧阳修</td></tr></table></div>
<style>.mw-parser-output .hatnote{font-style:italic}</style>
</div>"""

LI_BAI_WIKI_HTML = """<div class="mw-parser-output">
<p><b>李白</b>（701年—762年），字<b>太白</b>，号<b>青莲居士</b>，唐朝诗人，被后人誉为“诗仙”。</p>
</div>"""

DISAMBIGUATION_HTML = """<div class="mw-parser-output"><p><b>李白</b>可以指：</p>
<ul><li><a href="/wiki/%E6%9D%8E%E7%99%BD">李白</a>，唐朝诗人</li>
<li><a href="/wiki/%E6%9D%8E%E7%99%BD_(%E8%B6%B3%E7%90%83%E8%BF%90%E5%8A%A8%E5%91%98)">李白 (足球运动员)</a></li></ul>
</div>"""

SU_SHI_BAIKE_HTML = """<!DOCTYPE html><html><head><meta charset="UTF-8"><title>苏轼（北宋文学家、书法家、画家）_百度百科</title>
<script>window.PAGE_DATA = {"lemmaId": 1};</script></head><body>
<div class="header">百度首页 登录 注册</div>
<div class="main-content J-content">
<dl class="lemmaWgt-lemmaTitle lemmaWgt-lemmaTitle-"><dd class="lemmaWgt-lemmaTitle-title J-lemma-title"><h1>苏轼</h1><h2>（北宋文学家、书法家、画家）</h2></dd></dl>
<div class="lemma-summary J-summary" label-module="lemmaSummary"><div class="para" label-module="para">苏轼（1037年1月8日－1101年8月24日），字子瞻，一字和仲，号铁冠道人、东坡居士，世称苏东坡、苏仙，眉州眉山（今属四川省眉山市）人。<sup class="sup--normal" data-sup="1">[1]</sup><a class="sup-anchor" name="ref_[1]">&nbsp;</a></div></div>
<div class="basic-info J-basic-info cmn-clearfix"><dl class="basicInfo-block basicInfo-left">
<dt class="basicInfo-item name">中文名</dt><dd class="basicInfo-item value">苏轼</dd>
<dt class="basicInfo-item name">别&nbsp;&nbsp;&nbsp;&nbsp;名</dt><dd class="basicInfo-item value">苏东坡、苏仙</dd></dl>
<dl class="basicInfo-block basicInfo-right"><dt class="basicInfo-item name">出生日期</dt><dd class="basicInfo-item value">1037年1月8日</dd>
<dt class="basicInfo-item name">代表作品</dt><dd class="basicInfo-item value">《赤壁赋》《水调歌头·明月几时有》</dd></dl></div>
<div class="para-title level-2" label-module="para-title"><h2 class="title-text"><span class="title-prefix">苏轼</span>人物生平</h2></div>
<div class="para" label-module="para">嘉祐二年（1057年），苏轼进士及第，名动京师。</div>
<div class="para" label-module="para">元丰三年（1080年），因乌台诗案被贬为黄州团练副使。</div>
<div class="lemma-reference"><ul><li>宋史·卷三百三十八</li></ul></div>
</div>
<div class="footer">©2026 Baidu 使用百度前必读</div>
</body></html>"""

LI_BAI_BAIKE_HTML = """<!DOCTYPE html><html><head><meta charset="UTF-8"><title>李白（唐代诗人）_百度百科</title></head><body>
<div class="main-content J-content">
<ul class="polysemantList-wrapper cmn-clearfix">
<li class="item"><span class="selected" title="唐代诗人">唐代诗人</span></li>
<li class="item"><a title="中国足球运动员" href="/baike/item/%E6%9D%8E%E7%99%BD/2043">中国足球运动员</a></li>
<li class="item"><a title="2012年张作骥执导电影" href="/baike/item/%E6%9D%8E%E7%99%BD/2044">2012年张作骥执导电影</a></li>
</ul>
<dl class="lemmaWgt-lemmaTitle"><dd class="lemmaWgt-lemmaTitle-title"><h1>李白</h1></dd></dl>
<div class="lemma-summary"><div class="para">李白（701年－762年），字太白，号青莲居士，唐代伟大的浪漫主义诗人，被后人誉为“诗仙”。</div></div>
</div></body></html>"""

BAIKE_ERROR_HTML = "<!DOCTYPE html><html><body><p>百度百科错误页</p></body></html>"


@dataclass
class WikiPage:
    pageid: int
    html: str
    description: str = ""
    disambiguation: bool = False


def _long_html() -> str:
    sentence = "这是一段很长的历史记载，用来检验来源文本被截断到两万字。"
    return '<div class="mw-parser-output">' + f"<p>{sentence * 40}</p>" * 60 + "</div>"


WIKI_PAGES: dict[str, WikiPage] = {
    "苏轼": WikiPage(29738, SU_SHI_WIKI_HTML, "北宋文学家、书画家、政治家"),
    "李白": WikiPage(5468, LI_BAI_WIKI_HTML, "唐朝诗人"),
    "李白 (消歧义)": WikiPage(7001, DISAMBIGUATION_HTML, "维基媒体消歧义页", disambiguation=True),
    "李白 (足球运动员)": WikiPage(7002, "<p>李白，中国足球运动员。</p>", "中国足球运动员"),
    LONG: WikiPage(8001, _long_html()),
    SLOW: WikiPage(8002, "<p>never sent</p>"),
    HUGE: WikiPage(8003, "<p>" + "大" * 700_000 + "</p>"),
    OFF_ORIGIN: WikiPage(8004, "<p>never sent</p>"),
}
WIKI_SEARCH: dict[str, list[str]] = {
    "李白": ["李白", "李白 (消歧义)", "李白 (足球运动员)"],
    "苏轼": ["苏轼"],
}
BAIKE_PAGES: dict[str, str] = {
    "苏轼": SU_SHI_BAIKE_HTML,
    "李白": LI_BAI_BAIKE_HTML,
    "李白/2043": LI_BAI_BAIKE_HTML.replace("唐代诗人</span>", "唐代诗人</span>").replace(
        "李白（701年－762年）", "李白（1988年－），中国足球运动员"
    ),
    HUGE: "<html><body>" + "<div class='para'>大</div>" * 200_000 + "</body></html>",
}


@dataclass
class FakeSources:
    """The running fake: its address and the requests it has seen."""

    host: str
    port: int
    requests: list[Request] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    gate: trio.Event = field(default_factory=trio.Event)
    active: int = 0
    max_active: int = 0
    """Bugs of the fake itself (answered with 500)."""

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def settings(self, **overrides: Any) -> SourceSettings:
        """Source settings pointing at this fake (``{lang}`` in the MediaWiki path)."""
        return SourceSettings(
            wikipedia_url=f"{self.base_url}/{{lang}}/w/api.php",
            baike_url=f"{self.base_url}/baike",
            **overrides,
        )

    def wiki_url(self, title: str, lang: str = "zh") -> str:
        """A page's ``fullurl`` as this fake reports it."""
        return f"{self.base_url}/{lang}/wiki/{quote(title.replace(' ', '_'))}"

    def calls(self, **params: str) -> list[dict[str, str]]:
        """The query parameters of the MediaWiki API requests that had all of ``params``."""
        found = []
        for request in self.requests:
            query = {k: v[-1] for k, v in parse_qs(request.query).items()}
            if request.path.endswith("/w/api.php") and params.items() <= query.items():
                found.append(query)
        return found


async def start_fake_sources(nursery: trio.Nursery) -> FakeSources:
    """Start the fake in ``nursery`` (stopped when the nursery is cancelled)."""
    fake: FakeSources = await nursery.start(_serve)
    return fake


async def _serve(task_status: trio.TaskStatus[FakeSources]) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    fake = FakeSources("127.0.0.1", listeners[0].socket.getsockname()[1])

    async def connection(stream: trio.SocketStream) -> None:
        await serve_connection(stream, partial(_route, fake), fake.errors.append)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started(fake)


async def _route(fake: FakeSources, request: Request, out: Responder) -> None:
    fake.requests.append(request)
    path = unquote(request.path)
    query = {k: v[-1] for k, v in parse_qs(request.query).items()}
    if path.endswith("/w/api.php"):
        await _wiki(fake, path.split("/")[1], query, out)
    elif path.startswith("/baike/item/"):
        await _baike(fake, path[len("/baike/item/") :], out)
    elif path == "/baike/error.html":
        await out.respond(200, BAIKE_ERROR_HTML.encode(), content_type="text/html; charset=utf-8")
    else:
        await out.respond(404, b"no such path", content_type="text/plain")


async def _json(out: Responder, data: Any) -> None:
    await out.respond(200, json.dumps(data, ensure_ascii=False).encode())


def _info(fake: FakeSources, title: str, lang: str, index: int | None = None) -> dict[str, Any]:
    page = WIKI_PAGES.get(title)
    if page is None:
        return {"ns": 0, "title": title, "missing": True}
    info: dict[str, Any] = {
        "pageid": page.pageid,
        "ns": 0,
        "title": title,
        "contentmodel": "wikitext",
        "pagelanguage": lang,
        "fullurl": fake.wiki_url(title, lang),
        "editurl": f"{fake.base_url}/{lang}/w/index.php?title={quote(title)}&action=edit",
    }
    if index is not None:
        info["index"] = index
        info["description"] = page.description
    if page.disambiguation:
        info["pageprops"] = {"disambiguation": ""}
    return info


async def _wiki(fake: FakeSources, lang: str, query: dict[str, str], out: Responder) -> None:
    action = query.get("action")
    if action == "query" and query.get("generator") == "search":
        term = query.get("gsrsearch", "")
        if term == SLOW:
            await trio.sleep_forever()
        if term == GATED:
            fake.active += 1
            fake.max_active = max(fake.max_active, fake.active)
            try:
                await fake.gate.wait()
            finally:
                fake.active -= 1
        titles = WIKI_SEARCH.get(term, [])
        pages = [_info(fake, t, lang, index=i + 1) for i, t in enumerate(titles)]
        body: dict[str, Any] = {"batchcomplete": True}
        if pages:
            body["query"] = {"pages": pages[::-1]}  # the API does not sort by index
        await _json(out, body)
    elif action == "query" and "titles" in query:
        await _json(
            out, {"batchcomplete": True, "query": {"pages": [_info(fake, query["titles"], lang)]}}
        )
    elif action == "parse":
        page_id = int(query.get("pageid", "0"))
        title, page = next(
            ((t, p) for t, p in WIKI_PAGES.items() if p.pageid == page_id), ("", None)
        )
        if page is None:
            await _json(
                out, {"error": {"code": "nosuchpageid", "info": "There is no page with ID"}}
            )
        elif title == SLOW:
            await trio.sleep_forever()
        elif title == OFF_ORIGIN:
            await out.respond(
                302, b"", headers=[("location", f"http://localhost:{fake.port}/zh/w/api.php")]
            )
        else:
            await _json(out, {"parse": {"title": title, "pageid": page_id, "text": page.html}})
    else:
        await _json(out, {"error": {"code": "badvalue", "info": "Unrecognized value"}})


async def _baike(fake: FakeSources, name: str, out: Responder) -> None:
    if name == SLOW:
        await trio.sleep_forever()
    if name == OFF_ORIGIN:
        await out.respond(
            302, b"", headers=[("location", f"http://127.0.0.1:{fake.port + 1}/baike/item/x")]
        )
        return
    html = BAIKE_PAGES.get(name)
    if html is None:
        await out.respond(
            302, b"", headers=[("location", f"/baike/error.html?status=404&uri={quote(name)}")]
        )
        return
    await out.respond(200, html.encode(), content_type="text/html; charset=utf-8")
