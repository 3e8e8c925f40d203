/*
 * malloc_cxx.cc - C++ new/delete through the malloc family.
 *
 * libstdc++'s operator new/delete call malloc/free, so under
 * LD_PRELOAD=<allocator.so> every C++ allocation lands in the preloaded
 * allocator.  A standalone program (not linked with libumem); it prints
 * the harness summary line "malloc_cxx: N passed, N failed".
 *
 *	g++ -std=c++17 -O2 -fno-allocation-dce -pthread -o malloc_cxx \
 *	    tests/malloc_cxx.cc
 *
 * (-fno-allocation-dce: the compiler may otherwise drop new/delete pairs.)
 * Its own tiny harness: tests/test.h is C and redefines _GNU_SOURCE,
 * which g++ predefines.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static int passed, failed, cur_failed;
static const char *cur_name;

#define	CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "  FAIL %s: %s:%d: %s\n", cur_name,	\
		    __FILE__, __LINE__, #cond);				\
		cur_failed++;						\
	}								\
} while (0)

#define	RUN(fn) do {							\
	cur_name = #fn;							\
	cur_failed = 0;							\
	fn();								\
	if (cur_failed == 0)						\
		passed++;						\
	else								\
		failed++;						\
} while (0)

static bool usable_ours;	/* malloc_usable_size from malloc's object */
static void *volatile sink;	/* makes an allocation observable */

static size_t
opaque(size_t v)
{
	__asm__ __volatile__("" : "+r" (v));
	return (v);
}

static bool
aligned(const void *p, size_t a)
{
	return (((uintptr_t)p & (a - 1)) == 0);
}

static bool
same_object(const char *a, const char *b)
{
	Dl_info da, db;
	void *sa = dlsym(RTLD_DEFAULT, a), *sb = dlsym(RTLD_DEFAULT, b);

	return (sa != nullptr && sb != nullptr && dladdr(sa, &da) != 0 &&
	    dladdr(sb, &db) != 0 && da.dli_fbase == db.dli_fbase);
}

/* new[]/delete[] of every size 1..5000 and some large ones, all live. */
static void
t_new_arrays(void)
{
	std::vector<char *> v;
	size_t n, bad = 0;

	for (n = 1; n <= 5000; n++)
		v.push_back(new char[opaque(n)]);
	for (size_t big : { 65536ul, 200000ul, 1ul << 20, 9ul << 20 })
		v.push_back(new char[opaque(big)]);
	static const size_t bigs[] = { 65536, 200000, 1 << 20, 9 << 20 };
	auto len = [](size_t i) { return (i < 5000 ? i + 1 : bigs[i - 5000]); };

	for (size_t i = 0; i < v.size(); i++) {
		if (len(i) >= 16 && !aligned(v[i], 16))
			bad++;
		if (usable_ours && malloc_usable_size(v[i]) < len(i))
			bad++;
		memset(v[i], (int)(i & 0xff), len(i));
	}
	/* all live at once: no two may overlap */
	for (size_t i = 0; i < v.size(); i++) {
		size_t li = len(i);

		for (size_t j = 0; j < li; j += (li < 4096 ? 1 : 4093))
			bad += v[i][j] != (char)(i & 0xff);
		bad += v[i][li - 1] != (char)(i & 0xff);
	}
	for (char *p : v)
		delete[] p;
	CHECK(bad == 0);
}

struct Node {
	uint64_t	n_key;
	std::string	n_name;
	Node		*n_next;
};

/* Scalar new/delete (sized delete in C++14 and later) of objects. */
static void
t_new_objects(void)
{
	Node *head = nullptr;
	uint64_t i, sum = 0, want = 0;

	for (i = 0; i < 50000; i++) {
		Node *n = new Node{ i, std::to_string(i * 7919), head };

		head = n;
		want += i;
	}
	while (head != nullptr) {
		Node *n = head;

		sum += n->n_key;
		CHECK(n->n_name == std::to_string(n->n_key * 7919));
		head = n->n_next;
		delete n;
	}
	CHECK(sum == want);
}

struct alignas(64) Line {
	unsigned char	l_b[64];
};

struct alignas(4096) Page {
	unsigned char	p_b[4096];
};

/* C++17 aligned new goes to aligned_alloc (or posix_memalign). */
static void
t_aligned_new(void)
{
	std::vector<Line *> lines;
	std::vector<Page *> pages;
	size_t bad = 0;

	for (int i = 0; i < 1000; i++) {
		Line *l = new Line;

		bad += !aligned(l, 64);
		memset(l->l_b, i, sizeof (l->l_b));
		lines.push_back(l);
	}
	for (int i = 0; i < 50; i++) {
		Page *p = new Page;

		bad += !aligned(p, 4096);
		memset(p->p_b, i, sizeof (p->p_b));
		pages.push_back(p);
	}
	Line *arr = new Line[33];
	bad += !aligned(arr, 64);
	delete[] arr;
	void *raw = ::operator new(opaque(100), std::align_val_t(256));
	bad += !aligned(raw, 256);
	::operator delete(raw, std::align_val_t(256));
	for (size_t i = 0; i < lines.size(); i++) {
		bad += lines[i]->l_b[63] != (unsigned char)i;
		delete lines[i];
	}
	for (size_t i = 0; i < pages.size(); i++) {
		bad += pages[i]->p_b[4095] != (unsigned char)i;
		delete pages[i];
	}
	CHECK(bad == 0);
}

/* Impossible sizes: nothrow gives nullptr, the plain form throws. */
static void
t_new_failure(void)
{
	size_t huge = opaque(SIZE_MAX / 2);
	void *p = ::operator new(huge, std::nothrow);
	bool threw = false;

	CHECK(p == nullptr);
	try {
		p = ::operator new(huge);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	CHECK(threw);
	threw = false;
	try {
		/* element count * size overflows: bad_array_new_length */
		size_t count = opaque(SIZE_MAX / 4);
		uint64_t *a = new uint64_t[count];

		sink = a;
		delete[] a;
	} catch (const std::bad_array_new_length &) {
		threw = true;
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	CHECK(threw);
	p = ::operator new(huge, std::align_val_t(64), std::nothrow);
	CHECK(p == nullptr);
	/* and the allocator still works afterwards */
	std::string s(100000, 'x');
	CHECK(s.size() == 100000 && s[99999] == 'x');
}

/* Containers: growth by reallocation-like copying, many small nodes. */
static void
t_containers(void)
{
	std::vector<std::string> vs;
	std::map<int, std::string> m;
	std::unordered_map<std::string, int> um;
	std::vector<int> vi;
	size_t bad = 0;

	for (int i = 0; i < 20000; i++) {
		vs.push_back(std::string((size_t)(i % 300), (char)('a' + i % 26)));
		m[i * 3] = std::to_string(i);
		um[std::to_string(i)] = i;
	}
	for (int i = 0; i < 1000000; i++)
		vi.push_back(i);
	for (int i = 0; i < 20000; i++) {
		bad += vs[(size_t)i].size() != (size_t)(i % 300);
		bad += m[i * 3] != std::to_string(i);
		bad += um[std::to_string(i)] != i;
	}
	for (int i = 0; i < 1000000; i += 997)
		bad += vi[(size_t)i] != i;
	vi.shrink_to_fit();
	vs.clear();
	vs.shrink_to_fit();
	CHECK(bad == 0);
}

/* Objects made in one thread die in another (cross-thread delete). */
static void
t_threads(void)
{
	std::mutex mu;
	std::vector<std::unique_ptr<std::string>> box;
	std::atomic<int> done(0);
	std::atomic<size_t> bad(0);
	std::vector<std::thread> th;

	for (int t = 0; t < 4; t++) {
		th.emplace_back([&, t] {
			for (int i = 0; i < 20000; i++) {
				auto s = std::make_unique<std::string>(
				    (size_t)(i % 200 + 1), (char)('A' + t));
				std::unique_ptr<std::string> old;
				std::lock_guard<std::mutex> g(mu);

				box.push_back(std::move(s));
				if (box.size() > 64) {
					old = std::move(box.front());
					box.erase(box.begin());
				}
				if (old && (old->empty() ||
				    (*old)[0] < 'A' || (*old)[0] > 'D'))
					bad++;
			}
			done++;
		});
	}
	for (auto &x : th)
		x.join();
	CHECK(done == 4);
	CHECK(bad == 0);
	box.clear();
}

int
main(void)
{
	usable_ours = same_object("malloc", "malloc_usable_size");
	RUN(t_new_arrays);
	RUN(t_new_objects);
	RUN(t_aligned_new);
	RUN(t_new_failure);
	RUN(t_containers);
	RUN(t_threads);
	printf("malloc_cxx: %d passed, %d failed\n", passed, failed);
	return (failed == 0 ? 0 : 1);
}
