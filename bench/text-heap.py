"""
text-heap.py: a Python process whose heap is dense with text, as a web worker's is (JSON records,
HTML, log lines with request lines, SQL, HTTP headers, distinct URLs: millions of distinct values),
then SIGABRT (os.abort), so the kernel writes its core. One value can be planted at the start, the
middle or the end of the allocation order, or nowhere.

Usage: python3 text-heap.py MIB SEED start|middle|end|none REVERSED-PLANTED [web|long]
  The planted value is given reversed, so the command line in the core does not hold it: a core
  made with "none" holds it nowhere. SEED keeps the noise of different cores apart.
  The shape: "web" (the default) short values, as above; "long" long ones: URLs of many path
  segments (often past the 512 characters a value is clipped at), JSON with bodies, log lines
  with user agents, SQL and HTML that hold those URLs; "feed" what a feed fetcher holds: whole
  RSS and Atom documents (kilobytes each, dozens of distinct item URLs, escaped HTML), the fetch
  log lines and the parsed items as JSON.
"""
import json
import os
import random
import sys

mib, seed, where, reversed_planted = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
shape = sys.argv[5] if len(sys.argv) > 5 else "web"
rnd = random.Random(seed)
target = mib * 1024 * 1024
keep = []
size = 0
planted_yet = False


def plant():
    global planted_yet
    url = reversed_planted[::-1]
    keep.append('{"stream": "%s", "state": "stuck", "since": %d}' % (url, rnd.randrange(10**9)))
    keep.append("GET %s HTTP/1.1" % url)
    planted_yet = True


i = 0
while size < target:
    if where == "start" and not planted_yet:
        plant()
    if where == "middle" and not planted_yet and size >= target // 2:
        plant()
    if shape == "feed":
        site = rnd.randrange(20000)
        if i % 3 == 0:
            items = []
            for n in range(rnd.randrange(5, 25)):
                slug = "-".join("w%x" % rnd.getrandbits(16) for _ in range(rnd.randrange(3, 9)))
                link = "https://blog%d.example.com/%d/%02d/%s" % (site, 2020 + n % 7, 1 + n % 12, slug)
                items.append(
                    "<item><title>%s</title><link>%s</link><guid isPermaLink=\"false\">%s-%x</guid>"
                    "<pubDate>Tue, %02d Nov 2026 %02d:%02d:00 +0000</pubDate><description>&lt;p&gt;%s "
                    "&lt;a href=&quot;%s?utm_source=rss&quot;&gt;more&lt;/a&gt;&lt;/p&gt;</description></item>"
                    % (slug.replace("-", " "), link, site, rnd.getrandbits(48), 1 + n % 28, n % 24, n % 60,
                       "lorem ipsum dolor sit amet " * rnd.randrange(1, 12), link))
            s = ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Blog %d</title>'
                 "<link>https://blog%d.example.com/</link>%s</channel></rss>" % (site, site, "".join(items)))
        elif i % 3 == 1:
            s = "2026-12-03 10:%02d:%02d INFO fetcher[%d] GET https://blog%d.example.com/feed.xml?since=%d 200 %d bytes in %d ms" % (
                i % 60, (i // 60) % 60, seed, site, rnd.getrandbits(32), rnd.randrange(10**6), rnd.randrange(900))
        else:
            s = json.dumps({"feed_id": site, "customer": rnd.randrange(5000), "entry": "https://blog%d.example.com/p/%x" % (
                site, rnd.getrandbits(40)), "etag": "%032x" % rnd.getrandbits(128), "fetched": rnd.randrange(10**9)})
        keep.append(s)
        size += len(s) + 49
        i += 1
        continue
    if shape == "long":
        path = "/".join("%x" % rnd.getrandbits(40) for _ in range(rnd.randrange(4, 40)))
        u = "https://cdn%d.example.org/%s?sig=%x&w=%d" % (rnd.randrange(500), path, rnd.getrandbits(64), seed)
        k = i % 4
        if k == 0:
            s = json.dumps({"id": i, "url": u, "body": "lorem ipsum " * rnd.randrange(1, 30)})
        elif k == 1:
            s = 'INFO %d fetched %s in %d ms user-agent="Mozilla/5.0 (X11; Linux x86_64) feedfetcher/%d"' % (
                i, u, rnd.randrange(10**4), seed)
        elif k == 2:
            s = "SELECT * FROM articles WHERE url = '%s' AND site_id = %d" % (u, rnd.randrange(10**5))
        else:
            s = '<a href="%s">%s</a>' % (u, "title %d " % i * rnd.randrange(1, 8))
        keep.append(s)
        size += len(s) + 49
        i += 1
        continue
    k = i % 6
    if k == 0:
        s = json.dumps({
            "id": i,
            "user": "u%d" % rnd.randrange(10**6),
            "url": "https://api%d.example.com/v1/items/%d?page=%d" % (seed, i, i % 97),
            "tags": ["feeds", "refresh"],
            "score": rnd.random(),
        })
    elif k == 1:
        s = '<div class="item"><a href="https://www%d.example.org/article/%d">Article %d</a><p>Lorem ipsum dolor sit amet %d</p></div>' % (
            seed, i, i, rnd.randrange(10**9))
    elif k == 2:
        s = "2026-12-03 10:%02d:%02d,%03d INFO worker[%d] GET /api/feeds/%d?customer=%d HTTP/1.1 200 %dms" % (
            i % 60, (i // 60) % 60, i % 1000, seed, i, i % 5000, rnd.randrange(900))
    elif k == 3:
        s = "SELECT id, name, updated_at FROM feeds WHERE customer_id = %d AND id > %d ORDER BY id LIMIT 50" % (
            i % 5000, i)
    elif k == 4:
        s = "Host: cdn%d.example.net\r\nUser-Agent: python-requests/2.31\r\nContent-Type: application/json\r\nX-Request-Id: %032x\r\n" % (
            seed, rnd.getrandbits(128))
    else:
        s = "http://noise%d.test/path/%d/%d" % (seed, i, rnd.randrange(10**6))
    keep.append(s)
    size += len(s) + 49  # a compact str's header
    i += 1
if where == "end":
    plant()
sys.stdout.write("ready %d strings\n" % len(keep))
sys.stdout.flush()
os.abort()
