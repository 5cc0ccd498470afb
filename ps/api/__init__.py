"""The contract between the parameter server and its workers: what both sides must agree on.

The run spec and its validation (spec.py), the defaults table it is resolved from (defaults.py), env
ids and families (envs.py), the model layout (layout.py), the tensor codec (framing.py, convert.py),
channels and tokens (channel.py), the ParameterSource protocol with its records (source.py), process
set-up (malloc_tuning.py) and the generated gRPC stubs (v1/, from proto/).

A worker imports nothing else of ps, and nothing here imports torch or another ps module
(tests/unit/test_contract.py holds both).
"""
