#!/usr/bin/python3
"""`service` for the benchmark's test hosts, which have no init system: Postfix started, stopped, restarted or
reloaded with its own commands, as Debian's init script does it. Boot-time enablement is left alone and reported
unchanged (a test host never boots). Any other service is refused."""

from __future__ import annotations

import subprocess

from ansible.module_utils.basic import AnsibleModule

# The commands Debian's /etc/init.d/postfix runs for each state, without the init system around them.
COMMANDS = {
    "started": "postfix status >/dev/null 2>&1 || postfix start </dev/null",
    "stopped": "! postfix status >/dev/null 2>&1 || postfix stop",
    "restarted": "postfix stop >/dev/null 2>&1; postfix start </dev/null",
    "reloaded": "postfix reload",
}


def running() -> bool:
    return subprocess.run(["postfix", "status"], capture_output=True, check=False).returncode == 0


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": list(COMMANDS)},
            "enabled": {"type": "bool"},
            "arguments": {"type": "str", "default": "", "aliases": ["args"]},
            "pattern": {"type": "str"},
            "runlevel": {"type": "str", "default": "default"},
            "sleep": {"type": "int"},
            "use": {"type": "str", "default": "auto"},
        },
        supports_check_mode=True,
    )
    name, state = module.params["name"], module.params["state"]
    if name != "postfix":
        module.fail_json(msg=f"this test host's service shim manages postfix only, not {name!r}")
    was_running = running()
    changed = {"started": not was_running, "stopped": was_running, "restarted": True, "reloaded": True}.get(
        state, False
    )
    if changed and not module.check_mode:
        done = subprocess.run(["sh", "-c", COMMANDS[state]], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            module.fail_json(msg=f"postfix {state}: {done.stderr.strip() or done.stdout.strip()}", rc=done.returncode)
    module.exit_json(changed=changed, name=name, state=state or ("started" if was_running else "stopped"))


if __name__ == "__main__":
    main()
