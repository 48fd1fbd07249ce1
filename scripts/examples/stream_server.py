#!/usr/bin/env python3
"""A tiny HTTP server that plays the part of the internet radio in the incident.

The real incident: web workers fetched an "RSS feed" URL that turned out to be an
endless Icecast/SHOUTcast MP3 stream, so they never finished reading, the health
checks killed them with SIGABRT, and every worker left a core dump behind.  This
server reproduces both sides of that in miniature, with the standard library only,
so the same file serves the Node test helpers (test/helpers/cores.ts) and the
bash script that builds examples/ (scripts/make-example-cores.sh).

  /live/radio.mp3  an ENDLESS "MP3" stream with ICY headers, 4 KiB every 50 ms,
                   until the client goes away
  /feeds/ok.xml    a small, finite RSS document

It prints "LISTENING <port>" on stdout once it accepts connections (pass --port 0
for a free port).  With --exit-on-stdin-eof it exits as soon as its stdin closes,
so a parent that dies without cleaning up never leaves a server running.
"""

import argparse
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STREAM_PATH = '/live/radio.mp3'
FEED_PATH = '/feeds/ok.xml'
ICY_NAME = 'Nightshift Test Radio'
ICY_BR = '128'
ICY_METAINT = 16000
STREAM_TITLE = 'Nightshift Test Radio - Graveyard Shift Blues'
CHUNK_BYTES = 4096
CHUNK_INTERVAL_S = 0.05

FEED_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>Nightshift status feed</title>
    <link>http://example.test/</link>
    <description>A feed that ends, unlike the radio.</description>
    <item>
      <title>All quiet</title>
      <link>http://example.test/status/1</link>
      <guid>http://example.test/status/1</guid>
    </item>
  </channel>
</rss>
"""


def mp3_like_bytes(length):
    """Audio-ish filler: MPEG-1 Layer III frame headers (0xFFFB, 128 kbit/s, 44.1 kHz)
    followed by a repeating pattern.  Deterministic and compressible, so the cores
    (which hold the last chunks) stay small once gzipped."""
    frame = b'\xff\xfb\x90\x64' + bytes((i * 7) & 0xFF for i in range(413))
    whole = frame * (length // len(frame) + 1)
    return whole[:length]


AUDIO = mp3_like_bytes(ICY_METAINT)


def icy_metadata_block(title):
    """One ICY metadata block: a length byte (in 16-byte units) and padded text."""
    text = ("StreamTitle='%s';" % title).encode('utf-8')
    units = (len(text) + 15) // 16
    return bytes([units]) + text.ljust(units * 16, b'\0')


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: the stream has no Content-Length and ends only when a side hangs up.
    protocol_version = 'HTTP/1.0'
    server_version = 'Icecast/2.4.4'

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        pass

    def do_GET(self):
        if self.path == STREAM_PATH:
            self.stream()
        elif self.path == FEED_PATH:
            self.send_response(200)
            self.send_header('Content-Type', 'application/rss+xml; charset=utf-8')
            self.send_header('Content-Length', str(len(FEED_XML)))
            self.end_headers()
            self.wfile.write(FEED_XML)
        else:
            self.send_error(404)

    def stream(self):
        self.send_response(200)
        self.send_header('Content-Type', 'audio/mpeg')
        self.send_header('icy-name', ICY_NAME)
        self.send_header('icy-br', ICY_BR)
        self.send_header('icy-metaint', str(ICY_METAINT))
        self.send_header('Cache-Control', 'no-cache')
        self.end_headers()
        # The header promises a metadata block every ICY_METAINT audio bytes, so the
        # body keeps that promise; the title then also shows up in the clients' cores.
        body = AUDIO + icy_metadata_block(STREAM_TITLE)
        offset = 0
        try:
            while True:
                chunk = body[offset:offset + CHUNK_BYTES]
                if len(chunk) < CHUNK_BYTES:
                    chunk += body[:CHUNK_BYTES - len(chunk)]
                offset = (offset + CHUNK_BYTES) % len(body)
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(CHUNK_INTERVAL_S)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            pass  # the listener went away (crashed, in our case): that is the end of it


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--exit-on-stdin-eof', action='store_true')
    args = parser.parse_args()

    server = Server((args.host, args.port), Handler)
    if args.exit_on_stdin_eof:
        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)

        threading.Thread(target=watch_stdin, daemon=True).start()
    print('LISTENING %d' % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
