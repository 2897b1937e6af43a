/*
 * The safetensors format, host only: a round trip of every dtype (scalars, empty tensors,
 * metadata with quotes, newlines, control characters and non-ASCII text) with the header
 * padded to 8 and tensors ordered and aligned as the reference writes them; the exact bytes
 * that Python's `safetensors` 0.8 writes for a known dict are read correctly and written
 * identically; escapes (\uXXXX, surrogate pairs) and free whitespace are decoded; corrupt
 * headers, offsets and truncated files each give the right status and a message naming the
 * file and the tensor; bad write arguments are refused; a write that fails after its
 * temporary is complete, one that runs out of file size midway, and one whose target is a
 * directory leave the old file intact and no temporary behind; allocation failures leak
 * nothing.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "kiln/checkpoint.h"
#include "support/kiln_test.h"
#include "train/safetensors.h"

/* What `safetensors.numpy.save({"weight": float32 [[1.5, -2, 3], [4, 5, 6.25]],
 * "ids": int64 [7, -8], "mask": uint8 [1, 0, 255], "count": int32 3},
 * metadata={"note": "café \"q\"\n"})` returns with safetensors 0.8.0: a 280-byte header
 * (six spaces of padding), I64 first, then F32, I32 and U8. */
static const char REFERENCE_HEADER[] =
    "{\"__metadata__\":{\"note\":\"caf\xc3\xa9 \\\"q\\\"\\n\"},"
    "\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
    "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[16,40]},"
    "\"count\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[40,44]},"
    "\"mask\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[44,47]}}      ";
static const unsigned char REFERENCE_LENGTH[8] = {0x18, 0x01, 0, 0, 0, 0, 0, 0};
static const unsigned char REFERENCE_DATA[47] = {
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40,
    0x00, 0x00, 0xa0, 0x40, 0x00, 0x00, 0xc8, 0x40, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0xff};

/* An 8-byte length, `header` and n_data bytes (0, 1, 2, ...) as a file. */
static void write_file(const char *path, const char *header, size_t n_data)
{
    size_t n_header = strlen(header);
    unsigned char *bytes = calloc(1, 8 + n_header + n_data);
    assert_non_null(bytes);
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)((uint64_t)n_header >> (8 * i));
    memcpy(bytes + 8, header, n_header);
    for (size_t i = 0; i < n_data; i++)
        bytes[8 + n_header + i] = (unsigned char)i;
    kiln_test_write_file(path, bytes, 8 + n_header + n_data);
    free(bytes);
}

static kiln_host_tensor host(const char *name, kiln_safetensors_dtype dtype, int ndim,
                             const int64_t *dims, const void *data)
{
    kiln_host_tensor t = {name, dtype, kiln_shape_of(ndim, dims), data};
    return t;
}

/* The reference file's tensors and metadata, in an order unlike the file's. */
static const float WEIGHT[6] = {1.5f, -2, 3, 4, 5, 6.25f};
static const int64_t IDS[2] = {7, -8};
static const uint8_t MASK[3] = {1, 0, 255};
static const int32_t COUNT = 3;
static const char NOTE[] = "caf\xc3\xa9 \"q\"\n";

static void reference_tensors(kiln_host_tensor t[4])
{
    t[0] = host("weight", KILN_SAFETENSORS_F32, 2, (int64_t[]){2, 3}, WEIGHT);
    t[1] = host("mask", KILN_SAFETENSORS_U8, 1, (int64_t[]){3}, MASK);
    t[2] = host("count", KILN_SAFETENSORS_I32, 0, NULL, &COUNT);
    t[3] = host("ids", KILN_SAFETENSORS_I64, 1, (int64_t[]){2}, IDS);
}

static void check_reference(const kiln_safetensors *file)
{
    assert_int_equal(kiln_safetensors_n_tensors(file), 4);
    assert_int_equal(kiln_safetensors_n_metadata(file), 1);
    assert_string_equal(kiln_safetensors_get_metadata(file, "note"), NOTE);
    assert_null(kiln_safetensors_get_metadata(file, "format"));
    const char *order[4] = {"ids", "weight", "count", "mask"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(kiln_safetensors_tensor(file, i)->name, order[i]);
    assert_null(kiln_safetensors_tensor(file, 4));
    const kiln_host_tensor *w = kiln_safetensors_find(file, "weight");
    assert_int_equal(w->dtype, KILN_SAFETENSORS_F32);
    assert_int_equal(w->shape.ndim, 2);
    assert_int_equal(w->shape.dim[0], 2);
    assert_int_equal(w->shape.dim[1], 3);
    assert_memory_equal(w->data, WEIGHT, sizeof WEIGHT);
    const kiln_host_tensor *ids = kiln_safetensors_find(file, "ids");
    assert_int_equal(ids->dtype, KILN_SAFETENSORS_I64);
    assert_memory_equal(ids->data, IDS, sizeof IDS);
    const kiln_host_tensor *count = kiln_safetensors_find(file, "count");
    assert_int_equal(count->dtype, KILN_SAFETENSORS_I32);
    assert_int_equal(count->shape.ndim, 0);
    assert_memory_equal(count->data, &COUNT, sizeof COUNT);
    const kiln_host_tensor *mask = kiln_safetensors_find(file, "mask");
    assert_int_equal(mask->dtype, KILN_SAFETENSORS_U8);
    assert_memory_equal(mask->data, MASK, sizeof MASK);
    assert_null(kiln_safetensors_find(file, "nope"));
}

static void test_reference_bytes(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *dir = kiln_test_make_temp_dir("safetensors");
    char *python = kiln_test_path_in(dir, "python.safetensors"),
         *ours = kiln_test_path_in(dir, "ours.safetensors");
    size_t n_header = sizeof REFERENCE_HEADER - 1, n = 8 + n_header + sizeof REFERENCE_DATA;
    assert_int_equal(n_header, 280);
    unsigned char *expected = malloc(n);
    assert_non_null(expected);
    memcpy(expected, REFERENCE_LENGTH, 8);
    memcpy(expected + 8, REFERENCE_HEADER, n_header);
    memcpy(expected + 8 + n_header, REFERENCE_DATA, sizeof REFERENCE_DATA);
    kiln_test_write_file(python, expected, n);

    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_safetensors_read(ctx, python, &file), KILN_OK);
    assert_string_equal(kiln_safetensors_get_path(file), python);
    check_reference(file);
    kiln_safetensors_destroy(file);

    kiln_host_tensor t[4];
    reference_tensors(t);
    kiln_metadata_entry note = {"note", NOTE};
    assert_int_equal(kiln_safetensors_write(ctx, ours, &note, 1, t, 4), KILN_OK);
    size_t n_ours = 0;
    unsigned char *bytes = kiln_test_read_file(ours, &n_ours);
    assert_int_equal(n_ours, n);
    assert_memory_equal(bytes, expected, n);
    free(bytes);
    free(expected);
    free(python);
    free(ours);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_context_destroy(ctx);
}

static void test_round_trip(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *dir = kiln_test_make_temp_dir("safetensors");
    char *path = kiln_test_path_in(dir, "all.safetensors");
    float big[5 * 7];
    for (int i = 0; i < 35; i++)
        big[i] = (float)i * 0.25f - 3.0f;
    const int32_t labels[3] = {-1, 0, 2147483647};
    kiln_host_tensor t[6];
    reference_tensors(t);
    t[4] = host("a.big", KILN_SAFETENSORS_F32, 6, (int64_t[]){1, 5, 1, 7, 1, 1}, big);
    t[5] = host("z/labels \xe2\x9c\x93", KILN_SAFETENSORS_I32, 1, (int64_t[]){3}, labels);
    kiln_host_tensor empty = host("empty", KILN_SAFETENSORS_F32, 2, (int64_t[]){0, 3}, NULL);
    kiln_host_tensor all[7] = {t[0], t[1], t[2], t[3], t[4], t[5], empty};
    const char *yaml = "name: mlp\nlayers:\n  - dense: {units: 8}\n# \"quoted\" \\ back\tslash\x01";
    kiln_metadata_entry meta[3] = {{"config", yaml}, {"epoch", "12"}, {"\xce\xbb", ""}};
    assert_int_equal(kiln_safetensors_write(ctx, path, meta, 3, all, 7), KILN_OK);
    assert_int_equal(kiln_test_count_entries(dir), 1); /* no temporary left behind */

    size_t n = 0;
    unsigned char *bytes = kiln_test_read_file(path, &n);
    uint64_t n_header = 0;
    for (int i = 0; i < 8; i++)
        n_header |= (uint64_t)bytes[i] << (8 * i);
    assert_int_equal(n_header % 8, 0);
    assert_int_equal(bytes[8], '{');
    assert_true(bytes[8 + n_header - 1] == ' ' || bytes[8 + n_header - 1] == '}');
    assert_non_null(strstr((const char *)bytes + 8, "\\u0001")); /* control characters escaped */
    free(bytes);

    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_OK);
    assert_int_equal(kiln_safetensors_n_tensors(file), 7);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(kiln_safetensors_metadata(file, (size_t)i)->key, meta[i].key);
        assert_string_equal(kiln_safetensors_metadata(file, (size_t)i)->value, meta[i].value);
    }
    assert_null(kiln_safetensors_metadata(file, 3));
    /* Wider dtypes first, then by name; each aligned to its element size in the file. */
    const char *order[7] = {"ids", "a.big", "empty", "weight", "count", t[5].name, "mask"};
    const unsigned char *base = kiln_safetensors_tensor(file, 0)->data;
    for (size_t i = 0; i < 7; i++) {
        const kiln_host_tensor *got = kiln_safetensors_tensor(file, i);
        assert_string_equal(got->name, order[i]);
        size_t offset = (size_t)((const unsigned char *)got->data - base);
        assert_int_equal(offset % kiln_safetensors_dtype_size(got->dtype), 0);
    }
    for (int i = 0; i < 7; i++) {
        const kiln_host_tensor *got = kiln_safetensors_find(file, all[i].name);
        assert_non_null(got);
        assert_int_equal(got->dtype, all[i].dtype);
        assert_true(kiln_shape_equal(&got->shape, &all[i].shape));
        uint64_t bytes_of = 0;
        assert_true(kiln__tensor_bytes(got->dtype, &got->shape, &bytes_of));
        if (bytes_of > 0)
            assert_memory_equal(got->data, all[i].data, (size_t)bytes_of);
    }
    kiln_safetensors_destroy(file);

    /* Rewriting replaces the file; no tensors and no metadata is a valid file too. */
    assert_int_equal(kiln_safetensors_write(ctx, path, NULL, 0, NULL, 0), KILN_OK);
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_OK);
    assert_int_equal(kiln_safetensors_n_tensors(file), 0);
    assert_int_equal(kiln_safetensors_n_metadata(file), 0);
    kiln_safetensors_destroy(file);
    free(path);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_context_destroy(ctx);
}

static void test_escapes_and_whitespace(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *dir = kiln_test_make_temp_dir("safetensors");
    char *path = kiln_test_path_in(dir, "escapes.safetensors");
    write_file(path,
               " {\n\t\"__metadata__\" : { \"k\\u00E9y\" : \"smile \\ud83d\\ude00 \\t\\/\\\\\\b\\f"
               "\\r\\n\\\"\" } ,\r\n \"t\\u0041\\u20ac\" : { \"shape\" : [ 1 ] , \"data_offsets\""
               " : [ 0 , 4 ] , \"dtype\" : \"F32\" } } \n\t ",
               4);
    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_OK);
    assert_string_equal(kiln_safetensors_get_metadata(file, "k\xc3\xa9y"),
                        "smile \xf0\x9f\x98\x80 \t/\\\b\f\r\n\"");
    assert_non_null(kiln_safetensors_find(file, "tA\xe2\x82\xac"));
    kiln_safetensors_destroy(file);
    free(path);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_context_destroy(ctx);
}

typedef struct bad_file {
    const char *header;
    size_t n_data;
    kiln_status status;
    const char *needle;
} bad_file;

#define W_F32_2 "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static const bad_file BAD[] = {
    /* JSON */
    {"[1]", 0, KILN_ERR_CORRUPT, "expected '{' at the start"},
    {"{\"w\":" W_F32_2 "} x", 8, KILN_ERR_CORRUPT, "'x' after the header's closing '}'"},
    {"{\"w\":{\"dtype\":\"F32\" \"shape\":[2],\"data_offsets\":[0,8]}}", 8, KILN_ERR_CORRUPT,
     "tensor 'w': expected '}'"},
    {"{\"w\":" W_F32_2 " \"v\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "expected '}' after a tensor"},
    {"{\"w", 0, KILN_ERR_CORRUPT, "never ends"},
    {"{\"w\\x\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "invalid escape '\\x'"},
    {"{\"w\\u12\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "four hex digits"},
    {"{\"w\\ud800\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "high surrogate"},
    {"{\"w\\udc00\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "low surrogate"},
    {"{\"w\\u0000\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "NUL"},
    {"{\"w\xff\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "invalid UTF-8"},
    {"{\"w\xc0\xaf\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "invalid UTF-8"}, /* overlong '/' */
    {"{\"w\n\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT, "control character 0x0a"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, KILN_ERR_CORRUPT,
     "tensor 'w': shape must be an integer"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}}", 8, KILN_ERR_CORRUPT,
     "data_offsets must be an integer"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,8]}}", 8, KILN_ERR_CORRUPT,
     "must not be negative"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, KILN_ERR_CORRUPT,
     "leading zero"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}", 8,
     KILN_ERR_CORRUPT, "does not fit in 64 bits"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, KILN_ERR_CORRUPT,
     "data_offsets has more than 2"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, KILN_ERR_CORRUPT,
     "[begin, end]"},
    {"{\"w\":true}", 0, KILN_ERR_CORRUPT, "tensor 'w': expected '{' to open the tensor"},
    /* schema */
    {"{\"w\":" W_F32_2 ",\"w\":" W_F32_2 "}", 16, KILN_ERR_CORRUPT, "tensor 'w' appears twice"},
    {"{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"},\"w\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT,
     "metadata key 'a' appears twice"},
    {"{\"__metadata__\":{},\"w\":" W_F32_2 ",\"__metadata__\":{}}", 8, KILN_ERR_CORRUPT,
     "__metadata__ appears twice"},
    {"{\"__metadata__\":{\"epoch\":3},\"w\":" W_F32_2 "}", 8, KILN_ERR_CORRUPT,
     "metadata 'epoch' must be a string"},
    {"{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     KILN_ERR_CORRUPT, "tensor 'w': field 'dtype' appears twice"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"offsets\":[0,8]}}", 8, KILN_ERR_CORRUPT,
     "tensor 'w': unknown field 'offsets'"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, KILN_ERR_CORRUPT,
     "tensor 'w': the field 'data_offsets' is missing"},
    {"{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, KILN_ERR_UNSUPPORTED,
     "tensor 'w': dtype F16 is not one kiln reads"},
    {"{\"w\":{\"dtype\":\"FLOAT\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, KILN_ERR_CORRUPT,
     "tensor 'w': 'FLOAT' is not a safetensors dtype"},
    {"{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
     KILN_ERR_UNSUPPORTED, "tensor 'w': shape has more than 6"},
    /* offsets and the data section */
    {"{\"a\":" W_F32_2 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
     KILN_ERR_CORRUPT, "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a'"},
    {"{\"a\":" W_F32_2 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20,
     KILN_ERR_CORRUPT, "4 unused bytes between tensor 'a' (ends at 8) and tensor 'b'"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, KILN_ERR_CORRUPT,
     "the first tensor, 'w', starts at 4"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, KILN_ERR_CORRUPT,
     "tensor 'w' has data_offsets [8, 0], which run backwards"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, KILN_ERR_CORRUPT,
     "tensor 'w' of dtype F32 and shape (3,) needs 12 bytes"},
    {"{\"w\":" W_F32_2 "}", 12, KILN_ERR_CORRUPT, "does not describe the last 4"},
    {"{\"a\":" W_F32_2 ",\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}", 13,
     KILN_ERR_CORRUPT,
     "tensor 'w' ends at byte 16 of the data section, but the file holds only 13"},
};

static void test_corrupt_files(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *dir = kiln_test_make_temp_dir("safetensors");
    char *path = kiln_test_path_in(dir, "bad.safetensors");
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        write_file(path, BAD[i].header, BAD[i].n_data);
        kiln_safetensors *file = NULL;
        kiln_status rc = kiln_safetensors_read(ctx, path, &file);
        if (rc != BAD[i].status)
            fail_msg("case %zu (%s): status %s, expected %s: %s", i, BAD[i].header,
                     kiln_status_name(rc), kiln_status_name(BAD[i].status),
                     kiln_context_last_error(ctx));
        assert_null(file);
        assert_contains(kiln_context_last_error(ctx), path);
        assert_contains(kiln_context_last_error(ctx), BAD[i].needle);
    }

    /* The file itself: shorter than the length field, a length beyond the file, length 0. */
    kiln_test_write_file(path, "\x10\x00\x00", 3);
    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), "fewer than the 8-byte header length");
    kiln_test_write_file(path, "\xe8\x03\x00\x00\x00\x00\x00\x00{\"w\":{}}", 16);
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), "header length 1000 does not fit the 8 bytes");
    kiln_test_write_file(path, "\0\0\0\0\0\0\0\0{}", 10);
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), "header length 0");
    /* A valid file cut short inside its data names the tensor that no longer fits. */
    write_file(path, "{\"w\":" W_F32_2 "}", 8);
    assert_int_equal(truncate(path, 8 + (off_t)strlen("{\"w\":" W_F32_2 "}") + 5), 0);
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), "tensor 'w' ends at byte 8");
    assert_contains(kiln_context_last_error(ctx), "truncated");
    char *missing = kiln_test_path_in(dir, "missing.safetensors");
    assert_int_equal(kiln_safetensors_read(ctx, missing, &file), KILN_ERR_IO);
    assert_contains(kiln_context_last_error(ctx), missing);
    assert_int_equal(kiln_safetensors_read(ctx, dir, &file), KILN_ERR_IO);
    assert_contains(kiln_context_last_error(ctx), "not a regular file");
    free(missing);
    free(path);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_context_destroy(ctx);
}

static void test_write_rejects_bad_arguments(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *dir = kiln_test_make_temp_dir("safetensors");
    char *path = kiln_test_path_in(dir, "bad.safetensors");
    float x[2] = {1, 2};
    kiln_host_tensor ok = host("x", KILN_SAFETENSORS_F32, 1, (int64_t[]){2}, x);
    kiln_host_tensor twice[2] = {ok, host("x", KILN_SAFETENSORS_I32, 1, (int64_t[]){2}, x)};
    assert_int_equal(kiln_safetensors_write(ctx, path, NULL, 0, twice, 2),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "tensor name 'x' appears twice");
    kiln_host_tensor bad[5] = {ok, ok, ok, ok, ok};
    bad[0].name = "__metadata__";
    bad[1].name = "bad\xff";
    bad[2].data = NULL;
    bad[3].shape.dim[0] = -1;
    bad[4].dtype = (kiln_safetensors_dtype)7;
    const char *needles[5] = {"'__metadata__' is reserved", "not valid UTF-8",
                              "has 8 bytes but no data", "invalid shape", "dtype 7"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(kiln_safetensors_write(ctx, path, NULL, 0, &bad[i], 1),
                         KILN_ERR_INVALID_ARGUMENT);
        assert_contains(kiln_context_last_error(ctx), needles[i]);
        assert_contains(kiln_context_last_error(ctx), path);
    }
    kiln_metadata_entry meta[2] = {{"k", "1"}, {"k", "2"}};
    assert_int_equal(kiln_safetensors_write(ctx, path, meta, 2, &ok, 1), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "metadata key 'k' appears twice");
    meta[1].value = NULL;
    assert_int_equal(kiln_safetensors_write(ctx, path, meta, 2, &ok, 1), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "metadata entry 1");
    assert_int_equal(kiln_test_count_entries(dir), 0); /* nothing was created */
    free(path);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_context_destroy(ctx);
}

static int fail_before_rename(const char *temp)
{
    struct stat st;
    assert_int_equal(stat(temp, &st), 0); /* the complete temporary exists at this point */
    assert_true(st.st_size > 8);
    return 1;
}

/* Writes v1, then tries to write v2 through `attempt`; v1 must survive, alone. */
static void check_old_file_survives(const char *dir, const char *path, kiln_context *ctx,
                                    const char *needle)
{
    assert_contains(kiln_context_last_error(ctx), path);
    assert_contains(kiln_context_last_error(ctx), needle);
    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_OK);
    assert_string_equal(kiln_safetensors_get_metadata(file, "version"), "1");
    kiln_safetensors_destroy(file);
    assert_int_equal(kiln_test_count_entries(dir), 1);
}

static void test_atomic_write(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *dir = kiln_test_make_temp_dir("safetensors");
    char *path = kiln_test_path_in(dir, "model.safetensors");
    static float big[1 << 14];
    kiln_host_tensor t = host("w", KILN_SAFETENSORS_F32, 1, (int64_t[]){1 << 14}, big);
    kiln_metadata_entry v1 = {"version", "1"}, v2 = {"version", "2"};
    assert_int_equal(kiln_safetensors_write(ctx, path, &v1, 1, &t, 1), KILN_OK);

    /* A failure once the temporary is complete (where a rename could fail). */
    kiln__atomic_before_rename = fail_before_rename;
    assert_int_equal(kiln_safetensors_write(ctx, path, &v2, 1, &t, 1), KILN_ERR_IO);
    kiln__atomic_before_rename = NULL;
    check_old_file_survives(dir, path, ctx, "failure injected");

    /* A failure midway through writing: the file-size limit stops the temporary at 4 KiB. */
    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    kiln_status rc = kiln_safetensors_write(ctx, path, &v2, 1, &t, 1);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, KILN_ERR_IO);
    check_old_file_survives(dir, path, ctx, "cannot write");

    /* A target that cannot be replaced (a non-empty directory): the rename itself fails. */
    char *blocked = kiln_test_path_in(dir, "blocked"), *inside = kiln_test_path_in(blocked, "keep");
    assert_int_equal(mkdir(blocked, 0755), 0);
    kiln_test_write_file(inside, "x", 1);
    assert_int_equal(kiln_safetensors_write(ctx, blocked, &v2, 1, &t, 1), KILN_ERR_IO);
    assert_contains(kiln_context_last_error(ctx), "cannot rename");
    assert_int_equal(kiln_test_count_entries(dir), 2); /* model.safetensors and blocked/ */
    assert_int_equal(kiln_test_count_entries(blocked), 1);
    unlink(inside);
    rmdir(blocked);
    /* A directory that does not exist. */
    char *nowhere = kiln_test_path_in(blocked, "model.safetensors");
    assert_int_equal(kiln_safetensors_write(ctx, nowhere, &v2, 1, &t, 1), KILN_ERR_IO);
    assert_contains(kiln_context_last_error(ctx), nowhere);

    /* And when nothing fails, the new file replaces the old one. */
    assert_int_equal(kiln_safetensors_write(ctx, path, &v2, 1, &t, 1), KILN_OK);
    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_OK);
    assert_string_equal(kiln_safetensors_get_metadata(file, "version"), "2");
    kiln_safetensors_destroy(file);
    assert_int_equal(kiln_test_count_entries(dir), 1);
    free(nowhere);
    free(inside);
    free(blocked);
    free(path);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_context_destroy(ctx);
}

/* Every allocation of a read and of a write fails in turn: NO_MEMORY, and nothing leaks. */
static void test_out_of_memory(void **state)
{
    (void)state;
    char *dir = kiln_test_make_temp_dir("safetensors");
    char *path = kiln_test_path_in(dir, "oom.safetensors"),
         *out = kiln_test_path_in(dir, "out.safetensors");
    kiln_test_allocator a;
    kiln_test_allocator_init(&a, -1);
    kiln_context_options options = {.allocator = &a.allocator};
    kiln_host_tensor t[4];
    reference_tensors(t);
    kiln_metadata_entry note = {"note", NOTE};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    assert_int_equal(kiln_safetensors_write(ctx, path, &note, 1, t, 4), KILN_OK);
    kiln_context_destroy(ctx);
    assert_int_equal(a.live, 0);
    for (int op = 0; op < 2; op++) {
        kiln_status rc = KILN_ERR_NO_MEMORY;
        long budget = 0;
        for (; rc == KILN_ERR_NO_MEMORY && budget < 200; budget++) {
            kiln_test_allocator_init(&a, -1);
            assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
            a.budget = budget;
            kiln_safetensors *file = NULL;
            rc = op == 0 ? kiln_safetensors_read(ctx, path, &file)
                         : kiln_safetensors_write(ctx, out, &note, 1, t, 4);
            if (rc == KILN_OK && op == 0)
                check_reference(file);
            kiln_safetensors_destroy(file);
            kiln_context_destroy(ctx);
            assert_int_equal(a.live, 0);
            assert_true(rc == KILN_OK || rc == KILN_ERR_NO_MEMORY);
        }
        assert_int_equal(rc, KILN_OK);
        assert_true(budget > 3); /* the failures were really exercised */
    }
    assert_int_equal(kiln_test_count_entries(dir), 2);
    free(path);
    free(out);
    kiln_test_remove_dir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_bytes),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_escapes_and_whitespace),
        cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_write_rejects_bad_arguments),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
