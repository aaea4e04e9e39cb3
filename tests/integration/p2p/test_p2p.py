"""The sharing group end to end: cachefs nodes in their own network namespaces, one nginx
origin, all reading the same model at once."""

import concurrent.futures
import hashlib
import os
import time

import cachefs_testlib as testlib
import p2p_net

MIB = 1 << 20
ALL_PEERS = " ".join(p2p_net.node_ip(i) for i in range(1, 5))  # default port, self included


def read_tree(root):
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(MIB), b""):
                    digest.update(block)
            out[os.path.relpath(path, root)] = digest.hexdigest()
    return out


def start_nodes(world, specs):
    """specs: [(index, kwargs)] started in parallel, as a cluster starts."""
    with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
        futures = [pool.submit(p2p_net.Node, world["topology"], index,
                               kwargs.pop("url", world["url"]), world["passfile"],
                               kwargs.pop("peers", ALL_PEERS), **kwargs)
                   for index, kwargs in specs]
        nodes = []
        errors = []
        for future in futures:
            try:
                nodes.append(future.result())
            except Exception as e:  # stop the others before failing
                errors.append(e)
        if errors:
            for node in nodes:
                node.close()
            raise errors[0]
        return nodes


def wait_converged(nodes, alive):
    if not testlib.wait_until(lambda: all(n.alive_peers() == alive for n in nodes), 20):
        for n in nodes:
            print("node %d log:\n%s" % (n.index, n.output()))
        raise AssertionError([(n.index, n.alive_peers()) for n in nodes])


def unexpected(node, allowed=()):
    return testlib.unexpected_log_lines(node.output(), allowed)


def test_four_nodes_read_the_model_once_from_the_origin(world, tmp_path):
    env_file = tmp_path / "cai.env"
    env_file.write_text("MODEL_SHARING_PEER=%s\n" % ALL_PEERS)
    os.chmod(env_file, 0o600)
    nodes = start_nodes(world, [(1, {"peers": None, "extra": ["--env-file", str(env_file)]}),
                                (2, {}), (3, {}), (4, {})])
    try:
        wait_converged(nodes, 3)
        tx_before = world["topology"].origin_tx_bytes()
        body_before = world["nginx"].body_bytes()
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            results = list(pool.map(lambda n: read_tree(n.mountpoint), nodes))
        for node, result in zip(nodes, results):
            assert result == world["digests"], "node %d read wrong bytes" % node.index
        egress = world["topology"].origin_tx_bytes() - tx_before
        body = world["nginx"].body_bytes() - body_before
        size = world["cipher_bytes"]
        print("origin egress %.3fx (interface), %.3fx (HTTP bodies) of %d ciphertext bytes"
              % (egress / size, body / size, size))
        assert body <= 1.1 * size
        assert egress <= 1.15 * size  # Ethernet/IP/TCP headers add ~4.5% on the wire
        for node in nodes:
            assert not unexpected(node), (node.index, unexpected(node))
    finally:
        for node in nodes:
            node.stop()
    stats = [n.stats() for n in nodes]
    for node in nodes:
        node.close()
    assert sum(s["bytes_from_peers"] for s in stats) > 2 * world["cipher_bytes"]
    assert sum(s["bytes_served"] for s in stats) == sum(s["bytes_from_peers"] for s in stats)
    assert all(s["corrupt_chunks"] == 0 for s in stats)


def test_node_killed_mid_read(world):
    nodes = start_nodes(world, [(1, {}), (2, {}), (3, {})])
    try:
        wait_converged(nodes, 2)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            start = time.monotonic()
            futures = [pool.submit(read_tree, n.mountpoint) for n in nodes[:2]]
            victim = pool.submit(read_tree, nodes[2].mountpoint)
            time.sleep(0.3)
            nodes[2].kill()
            results = [f.result(timeout=120) for f in futures]
            elapsed = time.monotonic() - start
            try:
                victim.result(timeout=30)
            except Exception:
                pass  # its mount went away under it
        assert results == [world["digests"]] * 2
        print("survivors finished in %.1f s" % elapsed)
        assert elapsed < 60
        for node in nodes[:2]:
            assert testlib.wait_until(lambda: "state=dead" in node.output(), 10), node.output()
    finally:
        for node in nodes:
            node.close()


def test_node_without_the_key_is_refused(world):
    members = start_nodes(world, [(1, {"peers": p2p_net.node_ip(2)}),
                                  (2, {"peers": p2p_net.node_ip(1)})])
    try:
        wait_converged(members, 1)
        # Another volume (its own master key), pointed at the group.
        intruder = p2p_net.Node(world["topology"], 5, world["other_url"], world["passfile"],
                                peers=p2p_net.node_ip(1))
        try:
            assert testlib.wait_until(lambda: "state=refused" in intruder.output(), 10), \
                intruder.output()
            assert "refused: it does not hold the group key" in intruder.output()
            assert read_tree(intruder.mountpoint) == world["other_digests"]
            assert read_tree(members[0].mountpoint) == world["digests"]
            assert members[0].alive_peers() == 1  # the intruder never became a member
        finally:
            intruder.stop()
        assert intruder.stats()["bytes_from_peers"] == 0
        intruder.close()
    finally:
        for node in members:
            node.stop()
    for node in members:
        node.close()


def test_corrupt_chunks_from_a_peer_are_detected(world):
    nodes = start_nodes(world, [
        (1, {"peers": p2p_net.node_ip(2), "env": {"CACHEFS_TEST_CORRUPT_PEER_CHUNKS": "1"}}),
        (2, {"peers": p2p_net.node_ip(1)})])
    try:
        # Node 2 may ban node 1 while still mounting (directory IVs are chunks too).
        assert testlib.wait_until(lambda: "state=alive" in nodes[1].output(), 20)
        assert read_tree(nodes[1].mountpoint) == world["digests"]
        assert "banned: it sent a chunk that failed verification" in nodes[1].output()
    finally:
        for node in nodes:
            node.stop()
    stats = nodes[1].stats()
    assert stats["corrupt_chunks"] >= 1
    assert stats["fallbacks"] >= 1
    for node in nodes:
        node.close()
