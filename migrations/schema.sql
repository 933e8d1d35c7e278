--
-- PostgreSQL database dump
--



SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: events_notify_appended(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.events_notify_appended() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('ledger_events_appended', '');
    RETURN NULL;
END;
$$;


--
-- Name: events_reject_change(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.events_reject_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;


--
-- Name: events_require_append_lock(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.events_require_append_lock() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM ledger_append_lock();
    RETURN NULL;
END;
$$;


--
-- Name: ledger_append_frontier(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ledger_append_frontier(OUT now timestamp with time zone, OUT oldest_appender timestamp with time zone) RETURNS record
    LANGUAGE plpgsql
    AS $$
BEGIN
    now := clock_timestamp();
    SELECT min(coalesce(started, 'epoch'::timestamptz)) INTO oldest_appender
      FROM ledger_appenders()
     WHERE pid IS DISTINCT FROM pg_backend_pid();
END;
$$;


--
-- Name: ledger_append_horizon(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ledger_append_horizon() RETURNS xid8
    LANGUAGE plpgsql
    AS $$
DECLARE
    snapshot pg_snapshot := pg_current_snapshot();
    holders bigint[];
BEGIN
    -- Strictly after the snapshot: a statement of its own.
    SELECT array_agg(own.transactionid::text::bigint) INTO holders
      FROM pg_locks AS lock
      JOIN pg_locks AS own
        ON own.virtualtransaction = lock.virtualtransaction
       AND own.locktype = 'transactionid' AND own.mode = 'ExclusiveLock' AND own.granted
     WHERE lock.locktype = 'advisory'
       AND lock.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND lock.classid = 1818584167 AND lock.objid = 1 AND lock.objsubid = 2
       AND lock.granted;
    -- Subtransaction ids among the holders match nothing: a snapshot's in-progress list
    -- holds top-level ids only.
    RETURN least(
        pg_snapshot_xmax(snapshot),
        (SELECT min(running) FROM pg_snapshot_xip(snapshot) AS running
          WHERE running::text::bigint % 4294967296 = ANY (holders)));
END;
$$;


--
-- Name: ledger_append_lock(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ledger_append_lock() RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF current_setting('ledger.append_lock', true) = 'held' THEN
        RETURN;
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'a transaction that appends events must take the append lock before its first write'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'call ledger_append_lock() first in the transaction';
    END IF;
    -- 1818584167 is 'ledg'; the second key names the lock. Shared: appenders never
    -- exclude one another.
    PERFORM pg_advisory_xact_lock_shared(1818584167, 1);
    PERFORM set_config('ledger.append_lock', 'held', true);
END;
$$;


--
-- Name: ledger_appenders(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ledger_appenders(OUT pid integer, OUT started timestamp with time zone) RETURNS SETOF record
    LANGUAGE sql
    AS $$
    SELECT lock.pid, activity.xact_start
      FROM pg_locks AS lock
      LEFT JOIN pg_stat_activity AS activity ON activity.pid = lock.pid
     WHERE lock.locktype = 'advisory'
       AND lock.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND lock.classid = 1818584167 AND lock.objid = 1 AND lock.objsubid = 2
       AND lock.granted
$$;


--
-- Name: payment_status(bigint, bigint, bigint, boolean); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_status(amount_due bigint, captured bigint, refunded bigint, cancelled boolean) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN cancelled THEN 'cancelled'::text WHEN ((refunded > 0) AND (refunded = captured)) THEN 'refunded'::text WHEN (refunded > 0) THEN 'partially_refunded'::text WHEN (captured >= amount_due) THEN 'paid'::text WHEN (captured > 0) THEN 'partially_paid'::text ELSE 'awaiting_payment'::text END;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: dead_letters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.dead_letters (
    id bigint NOT NULL,
    projection text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    key text,
    payload bytea,
    error text NOT NULL,
    attempts integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    redriven_at timestamp with time zone
);


--
-- Name: dead_letters_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.dead_letters ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.dead_letters_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.deliveries (
    notification_id uuid NOT NULL,
    channel text NOT NULL,
    order_id uuid NOT NULL,
    "position" bigint NOT NULL,
    event_at timestamp with time zone NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_until timestamp with time zone,
    claimed_by text,
    delivered_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT deliveries_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT deliveries_channel_check CHECK ((channel <> ''::text)),
    CONSTRAINT deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'sending'::text, 'delivered'::text, 'failed'::text])))
);


--
-- Name: delivery_cursors; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.delivery_cursors (
    channel text NOT NULL,
    cutover bigint NOT NULL,
    enqueued_through bigint NOT NULL,
    enabled_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT delivery_cursors_check CHECK ((enqueued_through >= cutover))
);


--
-- Name: events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.events (
    global_position bigint NOT NULL,
    stream_id uuid NOT NULL,
    stream_version integer NOT NULL,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    event_version smallint DEFAULT 1 NOT NULL,
    payload jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    recorded_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    tx_id xid8 DEFAULT pg_current_xact_id() NOT NULL,
    CONSTRAINT events_event_type_check CHECK ((event_type <> ''::text)),
    CONSTRAINT events_event_version_check CHECK ((event_version > 0)),
    CONSTRAINT events_stream_version_check CHECK ((stream_version > 0))
);


--
-- Name: events_global_position_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.events ALTER COLUMN global_position ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.events_global_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: idempotency_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.idempotency_keys (
    idempotency_key text NOT NULL,
    request_fingerprint bytea NOT NULL,
    response_status smallint,
    response_body bytea,
    stream_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: notification_deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notification_deliveries (
    id uuid NOT NULL,
    status text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT notification_deliveries_status_check CHECK ((status <> 'pending'::text))
);


--
-- Name: notification_orders; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notification_orders (
    order_id uuid NOT NULL,
    customer_id text NOT NULL,
    recipient text NOT NULL
);


--
-- Name: notifications; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.notifications (
    id uuid NOT NULL,
    order_id uuid NOT NULL,
    customer_id text NOT NULL COLLATE pg_catalog."C",
    template text NOT NULL,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    "position" bigint NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: payment_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_attempts (
    order_id uuid NOT NULL,
    stream_version integer NOT NULL,
    payment_id text NOT NULL,
    kind text NOT NULL,
    amount bigint NOT NULL,
    method text,
    reason text,
    refund_id text,
    recorded_at timestamp with time zone NOT NULL,
    "position" bigint,
    CONSTRAINT payment_attempts_kind_check CHECK ((kind = ANY (ARRAY['captured'::text, 'failed'::text, 'refunded'::text])))
);


--
-- Name: payment_process_inbox; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_process_inbox (
    event_id uuid NOT NULL,
    order_id uuid NOT NULL,
    "position" bigint NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: payment_process_revisions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_process_revisions (
    order_id uuid NOT NULL,
    revision integer NOT NULL,
    state jsonb NOT NULL,
    through_position bigint NOT NULL,
    changed_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);


--
-- Name: payment_processes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_processes (
    order_id uuid NOT NULL,
    state jsonb NOT NULL,
    step text NOT NULL,
    due_at timestamp with time zone,
    lease_until timestamp with time zone,
    revision integer NOT NULL,
    through_position bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT payment_processes_revision_check CHECK ((revision > 0))
);


--
-- Name: payment_versions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_versions (
    order_id uuid NOT NULL,
    stream_version integer NOT NULL,
    "position" bigint NOT NULL,
    recorded_at timestamp with time zone NOT NULL,
    next_position bigint,
    next_recorded_at timestamp with time zone,
    customer_id text NOT NULL COLLATE pg_catalog."C",
    currency text NOT NULL,
    amount_due bigint NOT NULL,
    captured bigint NOT NULL,
    refunded bigint NOT NULL,
    cancelled boolean NOT NULL,
    placed_position bigint NOT NULL
);


--
-- Name: payments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payments (
    order_id uuid NOT NULL,
    customer_id text NOT NULL COLLATE pg_catalog."C",
    currency text NOT NULL,
    amount_due bigint NOT NULL,
    captured bigint DEFAULT 0 NOT NULL,
    refunded bigint DEFAULT 0 NOT NULL,
    cancelled boolean DEFAULT false NOT NULL,
    outstanding bigint GENERATED ALWAYS AS ((amount_due - captured)) STORED,
    placed_position bigint NOT NULL,
    stream_version integer NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    status text GENERATED ALWAYS AS (public.payment_status(amount_due, captured, refunded, cancelled)) STORED COLLATE pg_catalog."C"
);


--
-- Name: projection_status; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projection_status (
    projection text NOT NULL,
    applied_events bigint DEFAULT 0 NOT NULL,
    last_position bigint,
    last_applied_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: projection_streams; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projection_streams (
    projection text NOT NULL COLLATE pg_catalog."C",
    stream_id uuid NOT NULL,
    stream_version integer NOT NULL
)
PARTITION BY LIST (projection);


--
-- Name: projection_streams_notifications; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projection_streams_notifications (
    projection text NOT NULL COLLATE pg_catalog."C",
    stream_id uuid NOT NULL,
    stream_version integer NOT NULL
);


--
-- Name: projection_streams_other; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projection_streams_other (
    projection text NOT NULL COLLATE pg_catalog."C",
    stream_id uuid NOT NULL,
    stream_version integer NOT NULL
);


--
-- Name: projection_streams_payments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projection_streams_payments (
    projection text NOT NULL COLLATE pg_catalog."C",
    stream_id uuid NOT NULL,
    stream_version integer NOT NULL
);


--
-- Name: projection_watermarks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projection_watermarks (
    projection text NOT NULL,
    "position" bigint DEFAULT 0 NOT NULL,
    complete_through timestamp with time zone DEFAULT '1970-01-01 00:00:00+00'::timestamp with time zone NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: relay_checkpoints; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.relay_checkpoints (
    name text NOT NULL,
    tx_id xid8 DEFAULT '0'::xid8 NOT NULL,
    global_position bigint DEFAULT 0 NOT NULL,
    published_events bigint DEFAULT 0 NOT NULL,
    last_published_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: snapshots; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.snapshots (
    stream_id uuid NOT NULL,
    stream_version integer NOT NULL,
    shape_version integer NOT NULL,
    state jsonb NOT NULL,
    taken_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: projection_streams_notifications; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_streams ATTACH PARTITION public.projection_streams_notifications FOR VALUES IN ('notifications');


--
-- Name: projection_streams_other; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_streams ATTACH PARTITION public.projection_streams_other DEFAULT;


--
-- Name: projection_streams_payments; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_streams ATTACH PARTITION public.projection_streams_payments FOR VALUES IN ('payments');


--
-- Name: dead_letters dead_letters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (id);


--
-- Name: deliveries deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_pkey PRIMARY KEY (notification_id, channel);


--
-- Name: delivery_cursors delivery_cursors_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.delivery_cursors
    ADD CONSTRAINT delivery_cursors_pkey PRIMARY KEY (channel);


--
-- Name: events events_event_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_event_id_key UNIQUE (event_id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (global_position);


--
-- Name: events events_stream_version_unique; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version);


--
-- Name: idempotency_keys idempotency_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.idempotency_keys
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (idempotency_key);


--
-- Name: notification_deliveries notification_deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notification_deliveries
    ADD CONSTRAINT notification_deliveries_pkey PRIMARY KEY (id);


--
-- Name: notification_orders notification_orders_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notification_orders
    ADD CONSTRAINT notification_orders_pkey PRIMARY KEY (order_id);


--
-- Name: notifications notifications_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_pkey PRIMARY KEY (id);


--
-- Name: payment_attempts payment_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_attempts
    ADD CONSTRAINT payment_attempts_pkey PRIMARY KEY (order_id, stream_version);


--
-- Name: payment_process_inbox payment_process_inbox_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_process_inbox
    ADD CONSTRAINT payment_process_inbox_pkey PRIMARY KEY (event_id);


--
-- Name: payment_process_revisions payment_process_revisions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_process_revisions
    ADD CONSTRAINT payment_process_revisions_pkey PRIMARY KEY (order_id, revision);


--
-- Name: payment_processes payment_processes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_processes
    ADD CONSTRAINT payment_processes_pkey PRIMARY KEY (order_id);


--
-- Name: payment_versions payment_versions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_versions
    ADD CONSTRAINT payment_versions_pkey PRIMARY KEY (order_id, stream_version);


--
-- Name: payments payments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payments
    ADD CONSTRAINT payments_pkey PRIMARY KEY (order_id);


--
-- Name: projection_status projection_status_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_status
    ADD CONSTRAINT projection_status_pkey PRIMARY KEY (projection);


--
-- Name: projection_streams projection_streams_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_streams
    ADD CONSTRAINT projection_streams_pkey PRIMARY KEY (stream_id, projection);


--
-- Name: projection_streams_notifications projection_streams_notifications_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_streams_notifications
    ADD CONSTRAINT projection_streams_notifications_pkey PRIMARY KEY (stream_id, projection);


--
-- Name: projection_streams_other projection_streams_other_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_streams_other
    ADD CONSTRAINT projection_streams_other_pkey PRIMARY KEY (stream_id, projection);


--
-- Name: projection_streams_payments projection_streams_payments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_streams_payments
    ADD CONSTRAINT projection_streams_payments_pkey PRIMARY KEY (stream_id, projection);


--
-- Name: projection_watermarks projection_watermarks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projection_watermarks
    ADD CONSTRAINT projection_watermarks_pkey PRIMARY KEY (projection);


--
-- Name: relay_checkpoints relay_checkpoints_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.relay_checkpoints
    ADD CONSTRAINT relay_checkpoints_pkey PRIMARY KEY (name);


--
-- Name: snapshots snapshots_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.snapshots
    ADD CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id);


--
-- Name: deliveries_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX deliveries_due ON public.deliveries USING btree ("position") WHERE (status = ANY (ARRAY['pending'::text, 'sending'::text]));


--
-- Name: deliveries_open_per_order; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX deliveries_open_per_order ON public.deliveries USING btree (order_id, channel, "position") WHERE (status = ANY (ARRAY['pending'::text, 'sending'::text]));


--
-- Name: events_commit_order; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX events_commit_order ON public.events USING btree (tx_id, global_position);


--
-- Name: idempotency_keys_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idempotency_keys_created_at ON public.idempotency_keys USING btree (created_at);


--
-- Name: notifications_by_customer; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_by_customer ON public.notifications USING btree (customer_id, "position");


--
-- Name: notifications_by_order; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_by_order ON public.notifications USING btree (order_id, "position");


--
-- Name: notifications_by_position; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX notifications_by_position ON public.notifications USING btree ("position");


--
-- Name: payment_processes_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_processes_due ON public.payment_processes USING btree (due_at) WHERE (due_at IS NOT NULL);


--
-- Name: payment_versions_by_customer; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_versions_by_customer ON public.payment_versions USING btree (customer_id, placed_position) INCLUDE ("position", next_position, recorded_at, next_recorded_at, currency, amount_due, captured, refunded, cancelled);


--
-- Name: payment_versions_by_placement; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_versions_by_placement ON public.payment_versions USING btree (placed_position, "position");


--
-- Name: payments_by_customer; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payments_by_customer ON public.payments USING btree (customer_id, placed_position);


--
-- Name: payments_by_position; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payments_by_position ON public.payments USING btree (placed_position);


--
-- Name: payments_by_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payments_by_status ON public.payments USING btree (status, placed_position);


--
-- Name: projection_streams_notifications_pkey; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.projection_streams_pkey ATTACH PARTITION public.projection_streams_notifications_pkey;


--
-- Name: projection_streams_other_pkey; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.projection_streams_pkey ATTACH PARTITION public.projection_streams_other_pkey;


--
-- Name: projection_streams_payments_pkey; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.projection_streams_pkey ATTACH PARTITION public.projection_streams_payments_pkey;


--
-- Name: events events_append_lock; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER events_append_lock BEFORE INSERT ON public.events FOR EACH STATEMENT EXECUTE FUNCTION public.events_require_append_lock();


--
-- Name: events events_no_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON public.events FOR EACH STATEMENT EXECUTE FUNCTION public.events_reject_change();


--
-- Name: events events_no_update_or_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER events_no_update_or_delete BEFORE DELETE OR UPDATE ON public.events FOR EACH ROW EXECUTE FUNCTION public.events_reject_change();


--
-- Name: events events_notify_appended; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER events_notify_appended AFTER INSERT ON public.events FOR EACH STATEMENT EXECUTE FUNCTION public.events_notify_appended();


--
-- PostgreSQL database dump complete
--


