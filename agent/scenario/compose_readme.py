"""The README of a docker-compose project written by `fedorch scenario compose`."""

from __future__ import annotations

from fedorch.scenario.model import LoadedScenario


def readme(loaded: LoadedScenario, partitions: dict[str, list[str]]) -> str:
    names = list(loaded.domains)
    rows = "\n".join(f"| {name} | {7100 + i} | {9100 + i} |" for i, name in
                     enumerate(names, start=1))
    description = " ".join(loaded.scenario.description.split())
    text = f"""# Scenario {loaded.name} on Docker Compose

{description}

Written by `fedorch scenario compose`: regenerate it from the scenario file rather than
editing it. `fedorch scenario run` runs the same scenario as local processes and checks
its expectations; here the federation runs in containers and the `submitter` service
submits its workflows once every agent is healthy.

## Run it

From this folder, with the fedorch repository as the build context (see `build:` in
docker-compose.yml):

```sh
for d in {" ".join(names)}; do
  fedorch keys init --domain "$d" --dir keys
done
fedorch keys init --client submitter --dir keys   # the client the agents accept
sudo chown 10001:10001 keys/*.key      # the image runs as uid 10001; keys are 0600
docker compose up --build -d
docker compose logs -f submitter       # exits 0 when every workflow succeeded
fedorch members --peer 127.0.0.1:7101 --identity keys/submitter.key \
  --agent-key keys/{names[0]}.pub
docker compose down -v                 # -v forgets each agent's state
```

| service | gRPC | metrics |
|---|---|---|
{rows}

Each agent listens on 7100 in its container and advertises `<service>:7100`; its state
lives in the volume `<service>-data`. Every container mounts all of `keys/` because one
operator runs every domain here; in a real federation each domain holds only its own
`.key` and the others' `.pub` files.
"""
    faults = list(loaded.scenario.faults)
    if faults:
        text += "\n## Faults\n\nCompose does not apply the scenario's fault schedule; " \
                "apply a fault by hand:\n\n| fault | command |\n|---|---|\n"
        for index, fault in enumerate(faults):
            text += f"| {fault.action} {', '.join(fault.domains)} | " \
                    f"{_command(fault, index, partitions)} |\n"
    return text


def _command(fault, index: int, partitions: dict[str, list[str]]) -> str:
    services = " ".join(fault.domains)
    if fault.action == "kill":
        return f"`docker compose kill -s SIGKILL {services}`"
    if fault.action == "stop":
        return f"`docker compose pause {services}`"
    if fault.action == "cont":
        return f"`docker compose unpause {services}`"
    if fault.action == "restart":
        return f"`docker compose restart {services}`"
    if fault.action == "partition":
        return ("disconnect each of " + ", ".join(fault.domains) + " from the `federation` "
                "network (`docker network disconnect <project>_federation <container>`); "
                f"they keep `partition-{index}-a`, the others `partition-{index}-b`")
    if fault.action == "heal":
        return "`docker network connect <project>_federation <container>` for each"
    return "not available under compose"
