#!/usr/bin/env python3
"""One web worker of the incident, in miniature (standard library only).

It holds what a real worker of the affected app held in memory: a Sentry-like
profiling payload as a JSON string, the HTTP request line it was serving, its
settings (secrets from the environment included), and the feed it was asked to
refresh.  It then "refreshes the feed" the naive way: read until EOF.  When the URL
is the endless radio stream (scripts/examples/stream_server.py) that loop never
ends, which is exactly how the real workers got stuck until SIGABRT turned each of
them into a core dump.

Once it has read --ready-bytes bytes (or reached EOF) it prints one line

    READY <name> bytes=<n> eof=<0|1>

on stdout, so a driver knows the interesting strings are in memory before it sends
SIGABRT.  A worker whose feed ended then idles: by default it blocks reading stdin
(and exits when stdin closes, so it dies with its parent); --idle forever sleeps.

The values below are mirrored as exported constants in test/helpers/cores.ts; the
fixture test greps the cores for them, so the two copies cannot drift apart silently.
"""

import argparse
import collections
import json
import os
import sys
import time
import urllib.request

PROFILE_PAYLOAD = {
    'type': 'transaction',
    'transaction': '/api/feeds/refresh',
    'release': 'webapp@2026.11.3',
    'environment': 'production',
    'profile': {
        'frames': [
            {'function': 'fetch_feed', 'module': 'feeds.fetch', 'filename': 'feeds/fetch.py', 'lineno': 42},
            {'function': 'read_chunked', 'module': 'feeds.http', 'filename': 'feeds/http.py', 'lineno': 117},
        ],
    },
}
REQUEST_LINE = 'GET /api/feeds/refresh?customer=4711 HTTP/1.1'
USER_AGENT = 'nightshift-webapp/2026.11.3 (+feeds)'
CHUNK_BYTES = 4096
KEEP_CHUNKS = 8


def main():
    parser = argparse.ArgumentParser(description='incident worker')
    parser.add_argument('--name', required=True)
    parser.add_argument('--url', required=True)
    parser.add_argument('--ready-bytes', type=int, default=20000)
    parser.add_argument('--idle', choices=('stdin', 'forever'), default='stdin')
    args = parser.parse_args()

    # Compact separators: the same bytes JavaScript's JSON.stringify produces, so
    # the TypeScript constant can be compared byte for byte.
    profile_payload_json = json.dumps(PROFILE_PAYLOAD, separators=(',', ':'))
    request_line = REQUEST_LINE
    settings = {
        'DATABASE_PASSWORD': os.environ.get('DATABASE_PASSWORD', ''),
        'SENTRY_DSN': os.environ.get('SENTRY_DSN', ''),
    }

    request = urllib.request.Request(args.url, headers={'User-Agent': USER_AGENT})
    response = urllib.request.urlopen(request, timeout=30)
    response_headers = list(response.headers.items())
    last_chunks = collections.deque(maxlen=KEEP_CHUNKS)
    total = 0
    ready = False
    eof = False
    while True:
        chunk = response.read(CHUNK_BYTES)
        if not chunk:
            eof = True
            break
        last_chunks.append(chunk)
        total += len(chunk)
        if not ready and total >= args.ready_bytes:
            ready = True
            print('READY %s bytes=%d eof=0' % (args.name, total), flush=True)

    body = b''.join(last_chunks)
    if not ready:
        print('READY %s bytes=%d eof=%d' % (args.name, total, int(eof)), flush=True)
    # Keep everything referenced while idling, as the real worker's frames did.
    held = (profile_payload_json, request_line, settings, response_headers, body)
    if args.idle == 'forever':
        while True:
            time.sleep(3600)
    while sys.stdin.buffer.read(4096):
        pass
    return held


if __name__ == '__main__':
    main()
