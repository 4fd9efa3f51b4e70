from position_order_service.store.keys import Channels, Keys


def test_seed_key_names() -> None:
    k = Keys()
    assert k.position("u1", "okx", "BTC-USDT-SWAP", "long") == "positions:realtime:u1:okx:BTC-USDT-SWAP:long"
    assert k.position_index("u1", "okx") == "positions:index:u1:okx"
    assert k.order("u1", "okx", "123") == "orders:realtime:u1:okx:123"
    assert k.open_orders("u1", "okx") == "orders:open:u1:okx"
    assert k.closed_orders("u1", "okx") == "orders:closed:u1:okx"
    assert k.trailing_stop("u1", "okx", "BTCUSDT", "long") == "trailing_stops:u1:okx:BTCUSDT:long"
    assert k.conditional_rule("u1", "r1") == "conditional_rules:u1:r1"
    assert k.conditional_rule_index("u1") == "conditional_rules:index:u1"
    assert k.active_users() == "active_users:position_order_service"
    assert k.bot_status("u1") == "user:u1:bot:status"
    assert k.bot_exchanges("u1") == "user:u1:bot:exchanges"
    assert k.watchlist("u1", "okx") == "user:u1:watchlist:okx"
    assert k.legacy_hyperrsi_position("u1", "BTC-USDT-SWAP", "long") == "user:u1:position:BTC-USDT-SWAP:long"
    assert (
        k.legacy_grid_level("okx", "u1", "BTC-USDT-SWAP", 5)
        == "okx:user:u1:symbol:BTC-USDT-SWAP:active_grid:5"
    )


def test_seed_channel_names() -> None:
    c = Channels()
    assert c.positions("u1", "okx", "BTC-USDT-SWAP") == "positions:u1:okx:BTC-USDT-SWAP"
    assert c.orders("u1", "okx") == "orders:u1:okx"
    assert c.prices("okx", "BTC-USDT-SWAP") == "prices:okx:BTC-USDT-SWAP"
    assert c.trailing_stops("u1") == "trailing_stops:u1"
    assert c.conditional_rules("u1") == "conditional_rules:u1"


def test_cluster_tags_keep_one_user_in_one_slot() -> None:
    k = Keys(cluster_tags=True)
    assert k.position("u1", "okx", "X", "long") == "positions:realtime:{u1}:okx:X:long"
    assert k.event_stream("u1") == "events:{u1}"
    assert k.event_seq("u1") == "events:seq:{u1}"


def test_index_member_round_trip_with_colons_in_symbol() -> None:
    m = Keys.position_index_member("BTC/USDT:USDT", "short")
    assert Keys.split_position_index_member(m) == ("BTC/USDT:USDT", "short")


def test_cluster_tags_put_every_key_a_script_touches_for_one_user_in_the_users_slot() -> None:
    from redis.crc import key_slot

    for prefix in ("", "test:abc:"):
        k = Keys(prefix=prefix, cluster_tags=True)
        u = "user-42"
        scripted = [
            k.position(u, "okx", "BTC-USDT-SWAP", "long"),
            k.position_index(u, "okx"),
            k.order(u, "okx", "1001"),
            k.open_orders(u, "okx"),
            k.closed_orders(u, "okx"),
            k.client_order(u, "okx", "c1"),
            k.trailing_stop(u, "okx", "BTC-USDT-SWAP", "long"),
            k.user_trailing_stops(u),
            k.conditional_rule(u, "r1"),
            k.conditional_rule_index(u),
            k.seen_fills(u, "okx"),
            k.credentials(u, "okx"),
            k.event_stream(u),
            k.event_seq(u),
            k.idempotency(u, "k"),
            k.hyperrsi_cooldown(u, "BTC"),
            k.hyperrsi_settings(u),
            k.grid_level(u, "okx", "BTC", 3),
            k.grid_index(u, "okx"),
            k.legacy_hyperrsi_position(u, "BTC-USDT-SWAP", "long"),
            k.legacy_grid_level("okx", u, "BTC-USDT-SWAP", 3),
        ]
        assert {key_slot(key.encode()) for key in scripted} == {key_slot(u.encode())}
        # without tags the same keys spread over slots: the switch is what keeps them together
        plain = Keys(prefix=prefix)
        assert len({key_slot(plain.event_stream(u).encode()), key_slot(plain.event_seq(u).encode())}) == 2


def test_cluster_tags_change_only_the_user_part_and_parse_back() -> None:
    k = Keys(cluster_tags=True)
    assert k.legacy_hyperrsi_position("u1", "BTC", "long") == "user:{u1}:position:BTC:long"
    assert k.parse_legacy_hyperrsi_position("user:{u1}:position:BTC:long") == ("u1", "BTC", "long")
    assert k.legacy_grid_level("okx", "u1", "BTC", 2) == "okx:user:{u1}:symbol:BTC:active_grid:2"
    assert k.parse_legacy_grid_level("okx:user:{u1}:symbol:BTC:active_grid:2") == ("u1", "okx", "BTC", 2)
    assert k.parse_position_index(k.position_index("u1", "okx")) == ("u1", "okx")
    # global sets and the bots' own keys keep their names (no script touches them)
    assert k.active_users() == "active_users:position_order_service"
    assert k.trailing_stop_index() == "trailing_stops:index"
    assert k.bot_status("u1") == "user:u1:bot:status"
    assert k.tracked_exchanges("u1") == "tracked_exchanges:position_order_service:u1"
