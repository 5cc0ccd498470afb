"""The server's faces: the gRPC service over the core (grpc_service.py, reply.py), its auth, the
Prometheus /metrics endpoint, TensorBoard, push rates and the progress lines."""
