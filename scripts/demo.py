"""The demo: pretrain a small ELECTRA on the synthetic corpus, then segment the synthetic customers with it.

    python scripts/demo.py output_dir=outputs/demo                 # tiny ELECTRA (a couple of minutes)
    python scripts/demo.py output_dir=outputs/demo pretrain=small  # ELECTRA-small (several minutes)

Other ``key=value`` arguments go to ``scripts/segment.py`` (e.g. ``cluster=gmm``). An existing
``DIR/pretrain/discriminator`` is reused, so a second demo run only re-segments (delete it to retrain).
Each step runs as its own process, exactly as a user would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent


def parse(arguments: list[str]) -> tuple[dict[str, str], list[str]]:
    own, passed = {"output_dir": "outputs/demo", "pretrain": "tiny"}, []
    for argument in arguments:
        key, _, value = argument.partition("=")
        if key in own and value:
            own[key] = value
        else:
            passed.append(argument)
    return own, passed


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main(arguments: list[str]) -> None:
    own, passed = parse(arguments)
    out = Path(own["output_dir"])
    discriminator = out / "pretrain" / "discriminator"
    if (discriminator / "config.json").is_file():
        print(f"reusing the pretrained discriminator in {discriminator} (delete it to pretrain again)")
    else:
        run([sys.executable, str(SCRIPTS / "pretrain.py"), f"experiment={own['pretrain']}", "logger=none",
             "trainer.progress_bar=false", f"output_dir={out / 'pretrain'}"])
    run([sys.executable, str(SCRIPTS / "segment.py"), "data=synthetic", f"encoder.name_or_path={discriminator}",
         "encoder.progress=false", f"output_dir={out / 'segment'}", *passed])
    summary = json.loads((out / "segment" / "summary.json").read_text())
    evaluation = summary.get("evaluation") or {}
    print()
    print(f"segments: {summary['n_segments']} ({'; '.join(summary['segment_names'])})")
    if evaluation:
        print(f"recovery of the synthetic personas: NMI {evaluation['nmi']:.3f}, ARI {evaluation['ari']:.3f}, "
              f"accuracy {evaluation['accuracy']:.3f}")
    print(f"report: {(out / 'segment' / 'report.html').resolve()}")


if __name__ == "__main__":
    main(sys.argv[1:])
