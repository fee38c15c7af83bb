-- flag_bucket(bucket_group, user_id): the user's bucket 1..100 in a group, exactly as the SDK's
-- bucket() and Unleash's normalized hash compute it (DESIGN.md §4):
--   murmur3_x86_32(convert_to(bucket_group || ':' || user_id, 'UTF8'), seed 0) % 100 + 1
-- PostgreSQL has no unsigned 32-bit type, so the hash runs on bigint values kept in
-- 0 .. 2^32-1 by masking. A 32x32-bit product does not fit in a signed bigint, so each
-- multiplication by a constant c is split: (k * c) mod 2^32 =
--   (k * (c & 0xffff) + (((k * (c >> 16)) & 0xffff) << 16)) & 0xffffffff.
-- No SET search_path clause (it would cost a GUC save/restore per call): the body uses only
-- pg_catalog functions and operators, which are always resolved first.

-- The hash and the bucket.
create function public.flag_bucket(bucket_group text, user_id text) returns integer
  language plpgsql
  immutable strict parallel safe
  as $$
  declare
    data bytea := convert_to(bucket_group || ':' || user_id, 'UTF8');
    len integer := octet_length(data);
    body_end integer := octet_length(data) - octet_length(data) % 4;
    h bigint := 0;
    k bigint;
    i integer := 0;
  begin
    -- Body: little-endian 4-byte blocks.
    while i < body_end loop
      k := get_byte(data, i)::bigint | (get_byte(data, i + 1)::bigint << 8)
         | (get_byte(data, i + 2)::bigint << 16) | (get_byte(data, i + 3)::bigint << 24);
      k := (k * 11601 + (((k * 52382) & 65535) << 16)) & 4294967295;   -- k *= 0xcc9e2d51
      k := ((k << 15) | (k >> 17)) & 4294967295;                       -- rotl 15
      k := (k * 13715 + (((k * 7047) & 65535) << 16)) & 4294967295;    -- k *= 0x1b873593
      h := h # k;
      h := ((h << 13) | (h >> 19)) & 4294967295;                       -- rotl 13
      h := (h * 5 + 3864292196) & 4294967295;                          -- h = h*5 + 0xe6546b64
      i := i + 4;
    end loop;
    -- Tail: the last 1..3 bytes.
    if len > body_end then
      k := get_byte(data, i)::bigint;
      if len > body_end + 1 then k := k | (get_byte(data, i + 1)::bigint << 8); end if;
      if len > body_end + 2 then k := k | (get_byte(data, i + 2)::bigint << 16); end if;
      k := (k * 11601 + (((k * 52382) & 65535) << 16)) & 4294967295;
      k := ((k << 15) | (k >> 17)) & 4294967295;
      k := (k * 13715 + (((k * 7047) & 65535) << 16)) & 4294967295;
      h := h # k;
    end if;
    -- Finalisation (fmix32).
    h := h # len;
    h := h # (h >> 16);
    h := (h * 51819 + (((h * 34283) & 65535) << 16)) & 4294967295;    -- h *= 0x85ebca6b
    h := h # (h >> 13);
    h := (h * 44597 + (((h * 49842) & 65535) << 16)) & 4294967295;    -- h *= 0xc2b2ae35
    h := h # (h >> 16);
    return (h % 100)::integer + 1;
  end
  $$;

comment on function public.flag_bucket(text, text) is
  'Bucket 1..100 of user_id in bucket_group: murmur3_x86_32(utf8(group:user), 0) % 100 + 1, identical to the SDK and Unleash.';

-- Only the server side calls it directly (get_my_flags calls it as its owner).
revoke execute on function public.flag_bucket(text, text) from public, anon, authenticated;
grant execute on function public.flag_bucket(text, text) to service_role;
