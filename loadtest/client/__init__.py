"""Policy over the transport, as httpx splits client and transport: request payloads, auth and
Azure, retries and client-side rate limits, dialect fallbacks, model discovery, and the server's
own tokenizer asked over HTTP."""
