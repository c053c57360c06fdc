"""Python client of the APQ search service (apqd).

    import apq
    client = apq.Client("127.0.0.1:50051", token=None)
    result = client.search("fmnist_lowbit", "bitfusion", max_latency_ms=0.39, seed=1)
    print(result.config, result.metrics["accuracy"])

Every call raises an ApqError subclass (InvalidArgument, NotFound, FailedPrecondition, ...)
when the server refuses it; the error carries the server's google.rpc details: the
offending field paths (field_violations), precondition and quota violations, the resource.
"""

from apq.client import (ApqError, Cancelled, Client, DeadlineExceeded, FailedPrecondition,
                        Internal, InvalidArgument, NotFound, PermissionDenied,
                        ResourceExhausted, SearchResult, Unauthenticated, Unavailable)

__all__ = [
    "ApqError", "Cancelled", "Client", "DeadlineExceeded", "FailedPrecondition", "Internal",
    "InvalidArgument", "NotFound", "PermissionDenied", "ResourceExhausted", "SearchResult",
    "Unauthenticated", "Unavailable",
]
