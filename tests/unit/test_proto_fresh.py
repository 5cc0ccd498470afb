"""The committed generated code is what `python -m tools.gen_proto` makes from proto/ today."""
from pathlib import Path

from tools.gen_proto import ROOT, generate

GENERATED = ("parameter_server_pb2.py", "parameter_server_pb2.pyi", "parameter_server_pb2_grpc.py")


def test_generated_code_matches_the_proto(tmp_path: Path):
    generate(tmp_path)
    for name in GENERATED:
        fresh = (tmp_path / "ps" / "api" / "v1" / name).read_text()
        committed = (ROOT / "ps" / "api" / "v1" / name).read_text()
        assert fresh == committed, f"ps/api/v1/{name} is stale: run `make proto`"
