"""OpenRouter (OpenAI-compatible) client over raw httpx streaming."""
