import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A `docker` stand-in for the hosts the collection tests reach over SSH (this machine has the
 * Docker client but no engine). It answers what the collectors ask, over a fixtures directory
 * with one subdirectory per container holding its files, and a `.meta` file per container:
 * `name<TAB>running|exited<TAB>size as docker prints it`.
 *   docker ps -aq | docker ps -a -s --format ... | docker system df
 *   docker diff <id>            every file under the container, as added (A)
 *   docker exec <id> stat ...   running containers only, as a stopped one cannot exec
 *   docker cp <id>:<path> -     the tar stream docker cp emits
 */

export interface FakeContainer {
  id: string;
  name: string;
  running: boolean;
  size: string;
  files: Record<string, Buffer | string>;
}

export function writeDockerStandIn(binDir: string, fixtures: string, containers: FakeContainer[]): void {
  mkdirSync(binDir, { recursive: true });
  for (const c of containers) {
    const root = join(fixtures, c.id);
    for (const [path, content] of Object.entries(c.files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    writeFileSync(join(root, '.meta'), `${c.name}\t${c.running ? 'running' : 'exited'}\t${c.size}\n`);
  }
  const script = `#!/bin/sh
F='${fixtures}'
case "$1" in
  ps)
    for d in "$F"/*/; do
      id=$(basename "$d"); IFS='	' read -r name state size < "$d/.meta"
      case "$*" in
        *--format*) printf '%s\\t%s\\t%s\\n' "$id" "$name" "$size" ;;
        *) echo "$id" ;;
      esac
    done ;;
  system)
    printf 'TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\\nImages          3         2         1.2GB     300MB (25%%)\\nContainers      2         1         3.4GB     1.1GB (32%%)\\nLocal Volumes   1         1         10MB      0B (0%%)\\nBuild Cache     0         0         0B        0B\\n' ;;
  diff)
    root="$F/$2"; [ -d "$root" ] || { echo "Error: No such container: $2" >&2; exit 1; }
    (cd "$root" && find . -type f ! -name .meta | sed 's|^\\.|A |') ;;
  exec)
    root="$F/$2"; IFS='	' read -r name state size < "$root/.meta"
    [ "$state" = running ] || { echo "Error response from daemon: container $2 is not running" >&2; exit 1; }
    shift 2
    if [ "$1" = stat ]; then fmt="$3"; path="$4"; exec stat -c "$fmt" "$root$path"; fi
    echo "docker stand-in: exec $* is not supported" >&2; exit 1 ;;
  cp)
    id="\${2%%:*}"; path="\${2#*:}"; root="$F/$id"
    [ -e "$root$path" ] || { echo "Error response from daemon: Could not find the file $path in container $id" >&2; exit 1; }
    exec tar -C "$root$(dirname "$path")" -cf - "$(basename "$path")" ;;
  *) echo "docker stand-in: unsupported: $*" >&2; exit 1 ;;
esac
`;
  writeFileSync(join(binDir, 'docker'), script);
  chmodSync(join(binDir, 'docker'), 0o755);
}
