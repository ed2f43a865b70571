"""The asyncio front of the gRPC server: a call holds no thread until its message has arrived and its token passed.

grpcio's thread-pool server gives a call its worker thread before the request message arrives, so a few callers
that open a call and never send it (no token needed) stop the server. Here every method is served by a coroutine
on the server's event loop that, in order:

1. checks the `authorization` metadata: a call without a well-formed bearer token is refused at once on the loop;
   a JWT is verified on the loop (a signature check), a token for the Auth Service on a small pool of its own
   (the network call may block), never the database pool;
   a refused call is answered by the method itself, run on that same thread (a token check and metrics only),
   so the answer, its trailers and its metrics are the ones `core.rpc.rpc_method` gives;
2. waits for the request message, holding nothing but the coroutine;
3. takes one of a bounded number of slots (`workers` threads + `queued` waiting) or, when all are taken, answers
   RESOURCE_EXHAUSTED (`server_busy`) at once instead of queueing without end;
4. runs the `rpc_method` handler (authentication, scopes, tenant transaction, error map, metrics) in the database
   pool of `workers` threads, each with its own database connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from django.conf import settings

from core.auth import authenticate, bearer_token
from core.errors import DomainError, ServerBusy, mapping_for
from core.rpc import MalformedRequest

BUSY = ServerBusy()
NO_MESSAGE = MalformedRequest("The call ended without a request message.")


class _Aborted(Exception):
    """What the handler's `context.abort` raises in a pool thread; the coroutine answers it on the loop."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class SyncContext:
    """The part of `grpc.ServicerContext` a `rpc_method` handler uses, for a handler running in a pool thread.

    Trailers and the abort are kept here and given to the asyncio context back on the event loop.
    """

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._context = context
        self._metadata = tuple(context.invocation_metadata() or ())
        self._peer = context.peer()
        self.trailers: Sequence[tuple[str, str]] = ()

    def invocation_metadata(self) -> Sequence[tuple[str, str | bytes]]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def set_trailing_metadata(self, trailers: Sequence[tuple[str, str]]) -> None:
        self.trailers = tuple(trailers)

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _Aborted(code, details)


class CallGate:
    """Slots, pools and the per-call order above, shared by every method of one server."""

    def __init__(self, *, workers: int, queued: int, auth_workers: int = 2) -> None:
        self.workers = workers
        self.capacity = workers + queued
        self.in_flight = 0
        self.database_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc-worker")
        self.auth_pool = ThreadPoolExecutor(max_workers=auth_workers, thread_name_prefix="grpc-auth")

    def shutdown(self) -> None:
        self.database_pool.shutdown(wait=False, cancel_futures=True)
        self.auth_pool.shutdown(wait=False, cancel_futures=True)

    async def authenticated(self, context: grpc.aio.ServicerContext[Any, Any]) -> bool:
        header = None
        for key, value in context.invocation_metadata() or ():
            if key.lower() == "authorization" and isinstance(value, str):
                header = value
                break
        try:
            bearer_token(header)  # shape only: no I/O, on the loop
        except DomainError:
            return False
        try:
            if settings.AUTH_VERIFIER == "jwt":
                authenticate(header)  # a local signature check (and remembered 30 s): no I/O, on the loop
            else:  # the Auth Service over the network: on the token pool, never the loop or the database pool
                await asyncio.get_running_loop().run_in_executor(self.auth_pool, authenticate, header)
        except DomainError:
            return False
        return True

    def serve(self, handler: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        """A stream-unary coroutine for one `rpc_method` handler (`handler(request, context)`).

        Stream-unary on the server is the same call on the wire as unary; it lets the coroutine look at the
        metadata before the request message is read (grpcio reads a unary request before calling its handler).
        """

        async def behaviour(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            loop = asyncio.get_running_loop()
            sync_context = SyncContext(context)
            if not await self.authenticated(context):
                # answered by the handler itself (same code, trailers, metrics), which stops at the token
                return await self._finish(context, sync_context, self.auth_pool, handler, NO_MESSAGE, loop)
            request = await context.read()
            if request is grpc.aio.EOF:
                request = NO_MESSAGE
            if self.in_flight >= self.capacity:
                await context.abort(
                    mapping_for(BUSY).grpc_status,
                    BUSY.message,
                    trailing_metadata=(("error-code", BUSY.code),),
                )
            self.in_flight += 1
            try:
                return await self._finish(context, sync_context, self.database_pool, handler, request, loop)
            finally:
                self.in_flight -= 1

        return behaviour

    async def _finish(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        sync_context: SyncContext,
        pool: ThreadPoolExecutor,
        handler: Callable[[Any, Any], Any],
        request: Any,
        loop: asyncio.AbstractEventLoop,
    ) -> Any:
        try:
            response = await loop.run_in_executor(pool, handler, request, sync_context)
        except _Aborted as aborted:
            await context.abort(aborted.code, aborted.details, trailing_metadata=tuple(sync_context.trailers))
            raise AssertionError("grpc.aio.ServicerContext.abort always raises") from None  # pragma: no cover
        context.set_trailing_metadata(tuple(sync_context.trailers))
        return response
