#!/usr/bin/env python3
"""A real SMTP server for the end-to-end tests (started by `TestSmtp` in tests/src/smtp.rs).

    python3 tests/smtp_sink.py --port PORT --dir DIR

Every accepted message becomes one JSON line of DIR/messages.jsonl:
{"mail_from": ..., "rcpt_tos": [...], "data": <the raw message>}.
While DIR/answer exists, each DATA is answered with its content (an SMTP reply such as
`451 4.3.0 try again later`) and the message is not recorded.

Readiness is the port accepting connections: nothing is printed.
"""

import argparse
import asyncio
import json
import os
import sys

try:
    from aiosmtpd.smtp import SMTP
except ImportError:
    # The Rust side shows this line when the process exits before listening.
    sys.exit("smtp_sink.py needs aiosmtpd: apt-get install python3-aiosmtpd")


class Sink:
    def __init__(self, directory):
        self.messages = os.path.join(directory, "messages.jsonl")
        self.answer = os.path.join(directory, "answer")

    def forced_answer(self):
        # Read on every message, so that the test can change its mind between messages.
        try:
            with open(self.answer, encoding="utf-8") as file:
                return file.read().strip() or None
        except FileNotFoundError:
            return None

    async def handle_DATA(self, server, session, envelope):
        # Refusing at DATA rather than RCPT: the client has sent the whole message, so a
        # refusal there is the last word on it, as when a real relay rejects its content.
        answer = self.forced_answer()
        if answer:
            return answer
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            # Lossy rather than failing: a test reading a garbled byte should see it.
            "data": envelope.original_content.decode("utf-8", errors="replace"),
        }
        # Written (and flushed) before the 250, so that a client that saw its message
        # accepted can count on finding it in the file.
        with open(self.messages, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        return "250 OK"


async def serve(port, directory):
    loop = asyncio.get_running_loop()
    sink = Sink(directory)
    # SMTPUTF8 so that a mailer sending non-ASCII addresses is not refused by the sink.
    server = await loop.create_server(
        lambda: SMTP(sink, enable_SMTPUTF8=True, loop=loop), host="127.0.0.1", port=port
    )
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.dir))


if __name__ == "__main__":
    main()
