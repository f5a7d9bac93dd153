"""``gpulab kubesim``: placeholder until kubesim lands."""


def add_arguments(parser):
    parser.add_argument("action", choices=["serve"])


def run(args) -> int:
    from gpulab.kubesim.main import serve_forever  # noqa: PLC0415

    return serve_forever(args)
