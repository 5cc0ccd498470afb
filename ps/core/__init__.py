"""The server's state and its math, with no RPC code: ParameterServer (parameter_server.py) applies each
push (optim.py, _kernels.c), records its staleness (staleness.py), and keeps the target network
(target.py), the --sync rounds (sync.py), the episode window, the worker registry and the checks on
every request. It knows nothing of protobuf: it takes a Push and returns a PushOutcome (ps.api.source).
"""
