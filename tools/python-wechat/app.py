"""A typical Python WeChat Official Account bot, for comparison only.

What many small deployments look like: Flask behind gunicorn with one sync
worker per core, the signature checked with hashlib, the XML parsed with
ElementTree, an answer picked from a keyword table, a passive reply built
with an f-string. It is not part of parkbot; `parkbot-load wechat --python
tools/python-wechat` runs it beside `parkbot serve` under the same load.

    pip install -r requirements.txt
    WECHAT_TOKEN=... gunicorn -w 2 -b 127.0.0.1:8090 app:app   # one sync worker per core
    WECHAT_TOKEN=... PORT=8090 python3 app.py                  # Flask's own threaded server
"""

import hashlib
import hmac
import os
import time
import xml.etree.ElementTree as ET

from flask import Flask, Response, request

TOKEN = os.environ.get("WECHAT_TOKEN", "")

# Keyword -> answer, first match wins: the usual hand-written FAQ table.
ANSWERS = [
    ("刘慈欣", "刘慈欣工作室位于首钢园科幻产业集聚区。"),
    ("VFX", "Visual effects companies: see the park directory."),
    ("活动", "最近活动：首钢园Web3.0国际论坛、科幻产业联合体101。"),
    ("parking", "Parking: the first hour is free."),
    ("入驻", "入驻请联系园区招商中心。"),
    ("论坛", "首钢园Web3.0国际论坛在首钢园举办。"),
]
FALLBACK = "抱歉，我还不知道这个问题的答案。"

app = Flask(__name__)


def signed(args):
    parts = sorted([TOKEN, args.get("timestamp", ""), args.get("nonce", "")])
    digest = hashlib.sha1("".join(parts).encode()).hexdigest()
    return hmac.compare_digest(digest, args.get("signature", ""))


@app.get("/healthz")
def healthz():
    return "ok"


@app.get("/wechat")
def verify():
    if not signed(request.args):
        return Response("bad signature", status=403)
    return request.args.get("echostr", "")


@app.post("/wechat")
def receive():
    if not signed(request.args):
        return Response("bad signature", status=403)
    try:
        msg = ET.fromstring(request.get_data())
    except ET.ParseError:
        return Response("bad xml", status=400)
    content = msg.findtext("Content") or ""
    answer = next((a for k, a in ANSWERS if k.lower() in content.lower()), FALLBACK)
    reply = (
        f"<xml><ToUserName><![CDATA[{msg.findtext('FromUserName')}]]></ToUserName>"
        f"<FromUserName><![CDATA[{msg.findtext('ToUserName')}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{answer}]]></Content></xml>"
    )
    return Response(reply, content_type="application/xml")


if __name__ == "__main__":
    # The way many tutorials deploy it: Flask's own (threaded) server.
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8090")), threaded=True)
