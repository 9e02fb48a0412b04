"""Imports the gRPC stubs generated at build time (never checked in).

The build writes them to <build>/client/python/gen (package ``surge.v1``). They
are found on ``sys.path`` (``PYTHONPATH``), else in the folder named by
``$SURGE_PYTHON_STUBS``, else in ``<repo>/build*/client/python/gen``.
"""
import glob
import os
import sys


def _import_stubs():
    try:
        from surge.v1 import surge_pb2, surge_pb2_grpc  # noqa: F401
        return surge_pb2, surge_pb2_grpc
    except ImportError:
        pass
    candidates = []
    if os.environ.get("SURGE_PYTHON_STUBS"):
        candidates.append(os.environ["SURGE_PYTHON_STUBS"])
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    candidates += sorted(glob.glob(os.path.join(repo, "build*", "client", "python", "gen")))
    for c in candidates:
        if os.path.isfile(os.path.join(c, "surge", "v1", "surge_pb2.py")):
            sys.path.insert(0, c)
            from surge.v1 import surge_pb2, surge_pb2_grpc  # noqa: F811
            return surge_pb2, surge_pb2_grpc
    raise ImportError(
        "surge_client: generated stubs not found; build the project (target "
        "surge_python_stubs) and put <build>/client/python/gen on PYTHONPATH "
        "or in $SURGE_PYTHON_STUBS")


pb, pb_grpc = _import_stubs()
