"""The parameter server: global weights, shared RMSProp statistics, versions and the global step.

    api/      the contract with the workers: the only part of ps a worker imports (no torch, no server code)
    core/     the state and its math: where a push is applied, where staleness is recorded
    records/  what a run leaves on disk: pushes.csv, summary.json, checkpoints, resume
    service/  the gRPC service, auth, /metrics, TensorBoard and progress lines
    tools/    ps-status and ps-report
    cli.py, options.py, node.py, config.py: the ps-serve process

It never imports torch: the model is one flat float32 buffer and a layout of named views into it.
"""
