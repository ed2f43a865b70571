import os
import sys

from django.core.wsgi import get_wsgi_application


def cooperative_grpc() -> None:
    """Under gunicorn's gevent workers (the Procfile's web process) let grpcio yield while a call waits.

    Without it a gRPC call from a request (the Auth Service verifier, AUTH_VERIFIER=grpc) blocks the worker's
    every other request until it returns. It must run before the first channel is made.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()


cooperative_grpc()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
