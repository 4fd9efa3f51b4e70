"""The FastAPI app: built around the service's object graph (bootstrap.py), which its lifespan builds, starts
and stops. Routers reach the graph as `request.app.state.ctx`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from . import __version__, metrics
from .bootstrap import Services, build_service
from .config import Settings

AppContext = Services  # the name routers and tests know the graph by


# Young collections stay small and frequent (Python 3.13's defaults: they are short); a full collection, a
# stop of the loop over every object made since start-up (~80 ms in bench_fill_to_pubsub after 3,000 fills),
# is considered after 100 older collections instead of 10. Raising the young thresholds instead made the
# generation-1 collections as long as full ones (100-200 ms at 20,000/20).
GC_THRESHOLDS = (2000, 10, 100)


def quiet_gc() -> None:
    """Once the service has started: full collections rare and short on the hot path (issue 15)."""
    # everything built so far lives as long as the process: keep it out of the collector's full passes
    # (a gen-2 collection over it stalled the loop for ~200 ms in bench_fill_to_pubsub)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_service(settings)
        app.state.ctx = services
        try:
            await services.start()
        except BaseException:
            await services.stop()  # leave no embedded server or simulator behind
            raise
        quiet_gc()
        try:
            yield
        finally:
            await services.stop()

    from .api.commands import router as commands_router
    from .api.dashboard import router as dashboard_router
    from .api.errors import install_error_handlers
    from .api.fast import PositionsFastPath
    from .api.feed import router as feed_router
    from .api.health import router as health_router
    from .api.history import router as history_router
    from .api.machines import router as machines_router
    from .api.read import router as read_router
    from .api.users import router as users_router
    from .integrations.legacy_api import router as legacy_router

    # /docs and /redoc from assets shipped in a package (fastapi-offline), not a CDN: they work offline
    app = FastAPIOffline(
        title="position-order-service",
        version=__version__,
        description="Real-time positions and orders of many users on OKX and Binance USD-M, with events, "
        "trailing stops and conditional cancellation.",
        lifespan=lifespan,
    )
    metrics.instrument(app)
    # outermost: the hot read route's common case skips routing and the dependency graph (api/fast.py)
    app.add_middleware(PositionsFastPath, observers=metrics.http_observers())
    install_error_handlers(app)
    for router in (
        health_router,
        read_router,
        users_router,
        commands_router,
        machines_router,
        feed_router,
        history_router,
        legacy_router,
        dashboard_router,
    ):
        app.include_router(router)
    from .dashboard import install as install_dashboard

    install_dashboard(app)
    return app


__all__ = ["AppContext", "create_app"]
