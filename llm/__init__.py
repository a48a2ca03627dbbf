"""OpenRouter (OpenAI-compatible) client over raw httpx streaming."""

from llm.client import ChatStream, OpenRouterClient
from llm.errors import (
    AuthenticationError,
    BadRequest,
    FirstTokenTimeout,
    IdleTimeout,
    LLMError,
    LLMTimeout,
    Overloaded,
    PaymentRequired,
    ProtocolError,
    RateLimited,
    TotalTimeout,
    UpstreamUnavailable,
)
from llm.fake import FakeBehaviour, FakeUpstream, serve_fake_upstream
from llm.http import make_http_client
from llm.limiter import Limiter, LLMLimiter
from llm.metrics import LLMMetrics
from llm.models import MODEL_ID_PATTERN, InvalidModelId, check_model_id, is_model_id
from llm.retry import RetryPolicy, parse_retry_after
from llm.settings import LLMSettings
from llm.sse import SSEComment, SSEDecoder, SSEEvent
from llm.sync import BlockingClient
from llm.types import ChatMessage, Completion, Usage
from llm.usage import UsageSink

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BlockingClient",
    "ChatMessage",
    "ChatStream",
    "Completion",
    "FakeBehaviour",
    "FakeUpstream",
    "FirstTokenTimeout",
    "IdleTimeout",
    "InvalidModelId",
    "LLMError",
    "LLMLimiter",
    "Limiter",
    "LLMMetrics",
    "LLMSettings",
    "LLMTimeout",
    "MODEL_ID_PATTERN",
    "OpenRouterClient",
    "Overloaded",
    "PaymentRequired",
    "ProtocolError",
    "RateLimited",
    "RetryPolicy",
    "SSEComment",
    "SSEDecoder",
    "SSEEvent",
    "TotalTimeout",
    "Usage",
    "UsageSink",
    "UpstreamUnavailable",
    "check_model_id",
    "is_model_id",
    "make_http_client",
    "parse_retry_after",
    "serve_fake_upstream",
]
