"""Policy over the transport, as httpx splits client and transport: request payloads, auth and
Azure, retries and client-side rate limits, dialect fallbacks, model discovery, and the server's
own tokenizer asked over HTTP."""

AZURE_API_VERSION = "2024-10-21"
"""The api-version sent to an Azure deployment URL when neither the URL nor --api-version gives one
(the current GA version of the data-plane API). Here, import-free, so --help can show it."""
