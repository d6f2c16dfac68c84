"""A typical cron-style job's module: the imports a SaaS backend script carries.

SQLAlchemy (Core and ORM), PyMySQL, pydantic, and the standard library's
HTTP client stack (urllib/http/ssl/email: the weight ``requests`` pulls in,
without installing it). ``run()`` does a token amount of work, so what
``bench/cron.py`` measures is the cost of starting, not of working. Run by
cron as ``python -m cron_task``; by jobd as the task ``cron.run``
(``cron_task:run_job``).
"""

from __future__ import annotations

import email.message
import http.client
import json
import ssl
import urllib.request

import pydantic
import pymysql
import sqlalchemy as sa
import sqlalchemy.dialects.mysql
import sqlalchemy.orm


class Report(pydantic.BaseModel):
    table: str
    sql: str


def run() -> dict:
    metadata = sa.MetaData()
    contacts = sa.Table("contacts", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(200)))
    sql = str(sa.select(contacts).where(contacts.c.email.like("%@example.com")).compile(dialect=sa.dialects.mysql.dialect()))
    _ = (email.message.EmailMessage, http.client.HTTPSConnection, ssl.create_default_context, urllib.request.Request,
         pymysql.connect, sqlalchemy.orm.Session)
    return json.loads(Report(table="contacts", sql=sql).model_dump_json())


def run_job(ctx: object) -> dict:
    """The same job as a jobd task (a plain callable: called with the job's ctx)."""
    return run()


if __name__ == "__main__":
    run()
