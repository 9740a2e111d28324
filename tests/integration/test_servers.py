"""The test servers are real and work: a Kafka consumer group receives what
was produced, and FerretDB and mongo-java-server enforce a unique index
(through pymongo, which the tests use to look into the store)."""

import time
import uuid

import pymongo
import pytest
from confluent_kafka import Consumer

from servers import produce


def test_kafka_produce_and_consume_in_group(kafka, topic):
    records = [{"id": f"n{i}", "userId": f"user{i % 4}", "message": f"hello {i}"}
               for i in range(12)]
    delivered = produce(kafka.bootstrap, topic, records)
    assert len({p for p, _ in delivered}) > 1, "keys should spread over the 3 partitions"

    group = f"sanity-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({
        "bootstrap.servers": kafka.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    try:
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(records) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
        assert len(got) == len(records), f"consumed {len(got)} of {len(records)}"
        # Same key, same partition.
        by_key = {}
        for m in got:
            by_key.setdefault(m.key(), set()).add(m.partition())
        assert all(len(parts) == 1 for parts in by_key.values())
        consumer.commit(asynchronous=False)
        committed = consumer.committed(consumer.assignment(), timeout=10)
        assert sum(tp.offset for tp in committed if tp.offset >= 0) == len(records)
    finally:
        consumer.close()


def _crud_and_unique_index(client, db_name):
    """Unique index, duplicate key, unordered bulk with a duplicate, sorted find, delete."""
    coll = client[db_name]["notifications"]
    coll.create_index("id", unique=True)
    coll.insert_one({"id": "notif-001", "userId": "user1", "message": "hi"})
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        coll.insert_one({"id": "notif-001", "userId": "user1", "message": "again"})
    # Unordered bulk: the duplicate is reported, the rest is inserted.
    with pytest.raises(pymongo.errors.BulkWriteError) as exc:
        coll.insert_many([{"id": "notif-002", "userId": "user1"},
                          {"id": "notif-001", "userId": "user1"},
                          {"id": "notif-003", "userId": "user2"}], ordered=False)
    assert [e["code"] for e in exc.value.details["writeErrors"]] == [11000]
    found = list(coll.find({"userId": "user1"}, {"_id": 0, "id": 1}).sort("id", 1))
    assert found == [{"id": "notif-001"}, {"id": "notif-002"}]
    assert coll.delete_many({"userId": "user1"}).deleted_count == 2
    assert coll.count_documents({}) == 1


def test_ferretdb_crud_and_unique_index(ferretdb):
    db_name = f"sanity_{uuid.uuid4().hex[:8]}"
    with ferretdb.client() as client:
        try:
            _crud_and_unique_index(client, db_name)
        finally:
            client.drop_database(db_name)


def test_mongo_java_server_crud_and_unique_index(mongo):
    db_name = f"sanity_{uuid.uuid4().hex[:8]}"
    with mongo.client() as client:
        # pymongo 4 refuses a server below wire version 9; the test server
        # presents itself as MongoDB 5.0 (wire version 13).
        hello = client.admin.command("isMaster")
        assert hello["maxWireVersion"] == 13, hello
        assert client.server_info()["version"] == "5.0.0"
        try:
            _crud_and_unique_index(client, db_name)
            # The gateway writes with j:true: accepted (in memory, nothing to journal).
            journaled = client[db_name].get_collection(
                "notifications", write_concern=pymongo.WriteConcern(j=True))
            assert journaled.insert_one({"id": "notif-004", "userId": "user3"}).acknowledged
            assert journaled.count_documents({}) == 2
        finally:
            client.drop_database(db_name)
