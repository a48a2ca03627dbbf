"""The composition root: one task owns the process's long-lived things (DESIGN idiom 1)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import trio
from argon2 import PasswordHasher
from prometheus_client import CollectorRegistry

import llm
from app import connection_metrics
from app.services.account import AccountService
from app.services.admin import AdminService
from app.services.auth import AuthService
from app.services.cards import CardService
from app.services.characters import CharacterService
from app.services.chat import ChatService
from app.services.conversation_tree import ConversationTreeService
from app.services.event_relay import EventRelay
from app.services.feedback import FeedbackService
from app.services.following import FollowService
from app.services.generations import GenerationTracker
from app.services.groups import GroupService
from app.services.lifecycle import GenerationLifecycle
from app.services.lorebooks import LorebookService
from app.services.memory import MemoryService
from app.services.memory_notes import MemoryNotesService
from app.services.personas import PersonaService
from app.services.redis_link import RedisLink, open_redis
from app.services.redis_throttle import shared_login_throttle, shared_rate_limit
from app.services.runs import RunRegistry
from app.services.shared_limiter import SharedLLMLimiter
from app.services.snapshots import PromptSnapshots
from app.services.spool import ReplySpool
from app.services.takeover import Takeover
from app.services.throttle import (
    InProcessLoginThrottle,
    LoginPolicy,
    LoginThrottle,
    RateLimit,
    Unlimited,
)
from app.services.usage import UsageService
from app.settings import Settings
from app.sources import SourceClient, open_sources
from storage import Database, open_database

log = logging.getLogger(__name__)


@dataclass
class Health:
    ok: bool
    checks: dict[str, Any]
    degraded: bool = False  # serving, but a shared piece (Redis) is missing: per-process only


@dataclass
class Services:
    """Everything a request handler may use; built once by `run_services`."""

    settings: Settings
    db: Database
    limiter: llm.Limiter
    metrics: llm.LLMMetrics
    client: llm.OpenRouterClient
    registry: CollectorRegistry
    runs: RunRegistry
    tracker: GenerationTracker
    spool: ReplySpool
    lifecycle: GenerationLifecycle
    auth: AuthService
    characters: CharacterService
    chat: ChatService
    memory: MemoryService
    groups: GroupService
    admin: AdminService
    personas: PersonaService
    cards: CardService
    tree: ConversationTreeService
    memory_notes: MemoryNotesService
    account: AccountService
    usage: UsageService
    feedback: FeedbackService
    snapshots: PromptSnapshots
    lorebooks: LorebookService
    sources: SourceClient
    following: FollowService
    takeover: Takeover
    redis: RedisLink | None = None
    login_throttle: LoginThrottle = field(default_factory=InProcessLoginThrottle)
    rate_limit: RateLimit = field(default_factory=Unlimited)
    shutting_down: trio.Event = field(default_factory=trio.Event)

    def health(self) -> Health:
        """Background services' state, for /readyz."""
        checks: dict[str, Any] = {}
        ok = True
        for name, report in self.memory.health().items():
            checks[name] = report
            ok = ok and report.get("status") == "ok"
        if self.redis is not None:
            # Redis lost: still serving (per-process limits, local events), but degraded
            checks["redis"] = self.redis.health()
        return Health(ok, checks, degraded=self.redis is not None and not self.redis.up)

    async def database_answered(self, *, within: float) -> None:
        """The database answers (a /readyz probe found it so): restart now the background
        workers backing off after a storage failure, and give them up to `within` seconds to
        report progress, so readiness follows the database rather than their backoff."""
        if self.memory.database_answered():
            supervisor = self.memory.supervisor
            with trio.move_on_after(within):
                await supervisor.wait_for(lambda: not supervisor.degraded)


def make_limiter(settings: Settings, redis: RedisLink | None) -> llm.Limiter:
    """The LLM limits: service-wide through Redis when there is one, else this process's."""
    if redis is not None:
        return SharedLLMLimiter(
            redis,
            settings.llm.max_concurrency,
            per_user=settings.llm.max_per_user,
            queue_timeout=settings.llm.queue_timeout,
            lease=settings.llm_slot_lease_seconds,
        )
    return llm.LLMLimiter(
        settings.llm.max_concurrency,
        per_user=settings.llm.max_per_user,
        queue_timeout=settings.llm.queue_timeout,
    )


async def run_services(
    settings: Settings,
    *,
    stop: trio.Event,
    hasher: PasswordHasher | None = None,
    task_status: trio.TaskStatus[Services] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the database and the HTTP client, start background work, report ready, serve until
    `stop` is set, then stop generations (saving partial text) within `shutdown_grace`."""
    registry = CollectorRegistry()
    connection_metrics.register(registry)
    metrics = llm.LLMMetrics(registry)
    async with (
        open_database(settings.database_url, pool_size=settings.db_pool_size) as db,
        llm.make_http_client(settings.llm) as http,
        open_sources(settings.sources) as sources,
        open_redis(settings.redis_url, prefix=settings.redis_prefix) as redis,
        trio.open_nursery() as background,
        trio.open_nursery() as generations_nursery,
    ):
        limiter = make_limiter(settings, redis)
        usage = UsageService(db)
        snapshots = PromptSnapshots(db, days=settings.prompt_snapshot_days)
        client = llm.OpenRouterClient(http, limiter, settings.llm, metrics, usage_sink=usage)
        runs = RunRegistry(generations_nursery)
        tracker = GenerationTracker(db, lease_seconds=settings.generation_lease_seconds)
        spool = ReplySpool(db, settings.spool_dir, owner=tracker.owner)
        relay = None if redis is None else EventRelay(redis)
        lifecycle = GenerationLifecycle(db, runs, tracker, spool, relay)
        takeover = Takeover(
            db, relay, owner=tracker.owner, lease_seconds=settings.generation_lease_seconds
        )
        memory = MemoryService(
            db,
            client,
            trigger=settings.memory_trigger_messages,
            keep_recent=settings.memory_keep_recent,
            short_term_budget=settings.memory_short_term_budget,
            workers=settings.memory_workers,
        )
        auth = AuthService(
            db,
            token_ttl=timedelta(seconds=settings.token_ttl_seconds),
            hash_concurrency=settings.password_hash_concurrency,
            hasher=hasher,
        )
        character_service = CharacterService(db, client, runs, sources)
        services = Services(
            settings=settings,
            db=db,
            limiter=limiter,
            metrics=metrics,
            client=client,
            registry=registry,
            runs=runs,
            tracker=tracker,
            spool=spool,
            lifecycle=lifecycle,
            auth=auth,
            characters=character_service,
            chat=ChatService(
                db,
                client,
                lifecycle,
                memory,
                prompt_budget=settings.prompt_token_budget,
                snapshots=snapshots,
            ),
            memory=memory,
            groups=GroupService(
                db,
                client,
                lifecycle,
                memory,
                prompt_budget=settings.prompt_token_budget,
                snapshots=snapshots,
            ),
            admin=AdminService(db, limiter, metrics, runs, memory, auth.cache),
            personas=PersonaService(db),
            cards=CardService(db, character_service, runs),
            tree=ConversationTreeService(db, memory),
            login_throttle=shared_login_throttle(
                LoginPolicy.from_limits(
                    settings.login_free_attempts,
                    settings.login_max_delay,
                    settings.login_account_max_delay,
                ),
                redis,
            ),
            rate_limit=shared_rate_limit(settings.rate_limit_per_minute, redis),
            lorebooks=LorebookService(db),
            sources=sources,
            account=AccountService(db, auth, models=settings.llm.models),
            usage=usage,
            feedback=FeedbackService(db),
            snapshots=snapshots,
            memory_notes=MemoryNotesService(db),
            redis=redis,
            following=FollowService(db, lifecycle),
            takeover=takeover,
        )
        if settings.admin_username and settings.admin_password:
            await auth.ensure_admin(
                settings.admin_username, settings.admin_password.get_secret_value()
            )
        if redis is not None:
            await background.start(redis.watch)
        if isinstance(limiter, SharedLLMLimiter):
            await background.start(limiter.run)
        if relay is not None:
            await background.start(relay.run)
        await background.start(takeover.run)
        await background.start(tracker.run)
        await background.start(spool.run)
        await background.start(memory.run)
        await background.start(snapshots.run)
        task_status.started(services)

        await stop.wait()
        services.shutting_down.set()
        runs.stop_all("shutting_down")
        with trio.move_on_after(settings.shutdown_grace):
            await runs.wait_idle()
        background.cancel_scope.cancel()
        generations_nursery.cancel_scope.cancel()
