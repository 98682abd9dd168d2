"""Two controllers (two SKY_HOMEs on one machine) starting services at the same
moment must not give two services the same endpoint port: sky-lb binds with
SO_REUSEPORT, so two LBs on one port would split one service's traffic with
another's. Before the machine-wide port lock every pair here collided."""
import threading

from serve_util import DYNAMIC_YAML, Stack

PORT_START = "36001"


def test_concurrent_services_get_distinct_ports():
    stacks = [Stack("ports-%d" % i, {"SKY_SERVE_LB_PORT_START": PORT_START,
                                     "SKY_LOCALCLOUD_PROVISION_DELAY": "1"}) for i in (1, 2)]
    try:
        for round_ in range(3):
            errors = []

            def up(stack, name):
                try:
                    stack.sky("serve", "up", DYNAMIC_YAML, "-n", name, "-y", timeout=120)
                except AssertionError as e:
                    errors.append(str(e))

            threads = [threading.Thread(target=up, args=(st, "svc%d-%d" % (i, round_)))
                       for i, st in enumerate(stacks)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(150)
            assert not errors, errors
        endpoints = []
        for st in stacks:
            for svc in st.services():
                assert svc["endpoint"], svc
                endpoints.append(svc["endpoint"])
        # SKY_SERVE_ENDPOINT_HOST (serve_util.FAST_ENV) names the advertised host.
        assert all(e.startswith("127.0.0.1:") for e in endpoints), endpoints
        ports = [e.rsplit(":", 1)[1] for e in endpoints]
        assert len(ports) == 6 and len(set(ports)) == 6, endpoints
    finally:
        for st in stacks:
            st.teardown()
