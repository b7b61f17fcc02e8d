"""Generated protobuf/gRPC code of ``proto/cachekit/v1`` (``python -m cachekit.grpc.codegen``).

Never edit the ``*_pb2*`` files by hand; change the ``.proto`` and regenerate.
"""
