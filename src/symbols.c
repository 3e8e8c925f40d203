/*
 * symbols.c - function names for the stacks in reports, from the objects'
 * ELF symbol tables (.symtab).
 *
 * dladdr() knows only the dynamic symbol table: a program linked without
 * -rdynamic exports nothing, and static functions are never exported, so
 * dladdr names the nearest exported symbol before pc, or none.  The full
 * table is in the file unless it was stripped: the file is mapped read-only
 * on the first report that needs it (up to SYM_OBJECTS objects, kept
 * mapped; only the pages of the tables are read).  An object is known by
 * its address and name: another may be loaded where a closed one was.
 * A file whose build ID is not the loaded object's (replaced on disk
 * since) is not used.  A pc is named by the function whose [value,
 * value + size) holds it;
 * value is pc's address in the file, pc - dli_fbase plus the file address
 * of dli_fbase's page (zero for a shared object or a PIE, the link
 * address for a fixed one).
 *
 * Reports only: nothing here is on an allocation path.  It allocates
 * nothing; a report from a signal handler (the firewall's) that finds the
 * table's lock taken goes without (umem_trylock).
 */
#define	_GNU_SOURCE
#include "umem_impl.h"
#include "debug.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define	SYM_OBJECTS	16

typedef struct sym_obj {
	uintptr_t	so_base;	/* dli_fbase: its first page's address */
	char		so_path[256];	/* dli_fname, cut short if need be */
	uintptr_t	so_vaddr0;	/* that page's address in the file */
	const ElfW(Sym)	*so_syms;	/* NULL: no .symtab (or unreadable) */
	size_t		so_nsyms;
	const char	*so_strs;
	size_t		so_strsize;
} sym_obj_t;

static UMEM_BSS_LARGE sym_obj_t sym_objs[SYM_OBJECTS];
static int sym_nobjs;
static umem_lock_t sym_lock = UMEM_LOCK_INITIALIZER;

/*
 * The GNU build ID in len bytes of notes, or NULL (*idlen: its length).
 * Notes are 4-byte aligned: namesz, descsz, type, name, desc.
 */
static const uint8_t *
note_build_id(const uint8_t *p, size_t len, size_t *idlen)
{
	while (len >= 12) {
		uint32_t nsz, dsz, type;
		size_t nal, dal;

		memcpy(&nsz, p, 4);
		memcpy(&dsz, p + 4, 4);
		memcpy(&type, p + 8, 4);
		nal = ((size_t)nsz + 3) & ~(size_t)3;
		dal = ((size_t)dsz + 3) & ~(size_t)3;
		if (nal > len - 12 || dal > len - 12 - nal)
			return (NULL);
		if (type == NT_GNU_BUILD_ID && nsz == 4 &&
		    memcmp(p + 12, "GNU", 4) == 0) {
			*idlen = dsz;
			return (p + 12 + nal);
		}
		p += 12 + nal + dal;
		len -= 12 + nal + dal;
	}
	return (NULL);
}

typedef struct sym_id {
	uintptr_t	si_base;	/* the object's first page */
	const uint8_t	*si_id;		/* its build ID in memory, or NULL */
	size_t		si_len;
} sym_id_t;

static int
sym_id_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	sym_id_t *si = arg;
	const ElfW(Phdr) *load = umem_phdr_find(info, PT_LOAD, 0);
	int ours = load != NULL && info->dlpi_addr + (load->p_vaddr &
	    ~(uintptr_t)(umem_pagesize - 1)) == si->si_base;

	(void) size;
	for (int i = 0; ours && i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_NOTE && si->si_id == NULL)
			si->si_id = note_build_id((const uint8_t *)
			    (info->dlpi_addr + ph->p_vaddr), ph->p_filesz,
			    &si->si_len);
	}
	return (ours);
}

/*
 * Is the file mapped at map (size bytes) the one loaded at base?  A file
 * replaced since it was loaded (a package upgrade) would name functions
 * wrongly: both build IDs, when both have one, must match.
 */
static int
sym_same_build(const char *map, size_t size, uintptr_t base)
{
	const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)(const void *)map;
	const uint8_t *fid = NULL;
	size_t flen = 0;
	sym_id_t si = { base, NULL, 0 };

	for (unsigned i = 0; i < eh->e_phnum && fid == NULL; i++) {
		const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(const void *)
		    (map + eh->e_phoff) + i;

		if (ph->p_type == PT_NOTE && ph->p_offset <= size &&
		    ph->p_filesz <= size - ph->p_offset)
			fid = note_build_id((const uint8_t *)map + ph->p_offset,
			    ph->p_filesz, &flen);
	}
	(void) dl_iterate_phdr(sym_id_cb, &si);
	if (fid == NULL || si.si_id == NULL)
		return (1);
	return (flen == si.si_len && memcmp(fid, si.si_id, flen) == 0);
}

/* Map path and find its .symtab; so_syms stays NULL if there is none. */
static void
sym_load(sym_obj_t *so, const char *path)
{
	const ElfW(Ehdr) *eh;
	const ElfW(Shdr) *sh;
	struct stat st;
	char *map;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof (*eh) ||
	    (map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd,
	    0)) == MAP_FAILED) {
		(void) close(fd);
		return;
	}
	(void) close(fd);
	eh = (const ElfW(Ehdr) *)(const void *)map;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shentsize != sizeof (ElfW(Shdr)) || eh->e_shoff == 0 ||
	    eh->e_shoff > (uint64_t)st.st_size ||
	    (uint64_t)eh->e_shnum * sizeof (ElfW(Shdr)) >
	    (uint64_t)st.st_size - eh->e_shoff)
		goto none;
	/* dli_fbase is where the first PT_LOAD's page went */
	if (eh->e_phentsize != sizeof (ElfW(Phdr)) || eh->e_phoff == 0 ||
	    eh->e_phoff > (uint64_t)st.st_size ||
	    (uint64_t)eh->e_phnum * sizeof (ElfW(Phdr)) >
	    (uint64_t)st.st_size - eh->e_phoff)
		goto none;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(const void *)
		    (map + eh->e_phoff) + i;

		if (ph->p_type == PT_LOAD) {
			so->so_vaddr0 = ph->p_vaddr & ~(uintptr_t)(umem_pagesize -
			    1);
			break;
		}
	}
	if (!sym_same_build(map, (size_t)st.st_size, so->so_base))
		goto none;
	sh = (const ElfW(Shdr) *)(const void *)(map + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const ElfW(Shdr) *str;

		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum ||
		    sh[i].sh_entsize != sizeof (ElfW(Sym)))
			continue;
		str = &sh[sh[i].sh_link];
		if (sh[i].sh_offset > (uint64_t)st.st_size ||
		    sh[i].sh_size > (uint64_t)st.st_size - sh[i].sh_offset ||
		    str->sh_offset > (uint64_t)st.st_size ||
		    str->sh_size > (uint64_t)st.st_size - str->sh_offset ||
		    str->sh_size == 0 || (sh[i].sh_offset & 7) != 0)
			continue;
		so->so_syms = (const ElfW(Sym) *)(const void *)
		    (map + sh[i].sh_offset);
		so->so_nsyms = sh[i].sh_size / sizeof (ElfW(Sym));
		so->so_strs = map + str->sh_offset;
		so->so_strsize = str->sh_size;
		return;
	}
none:
	(void) munmap(map, (size_t)st.st_size);
}

/* The object loaded at base (path: its file), loaded if new; or NULL. */
static sym_obj_t *
sym_obj(uintptr_t base, const char *path)
{
	sym_obj_t *so;

	if (path == NULL)
		path = "";
	/* base and name: another object may be loaded where one was */
	for (int i = 0; i < sym_nobjs; i++)
		if (sym_objs[i].so_base == base &&
		    strncmp(sym_objs[i].so_path, path,
		    sizeof (so->so_path) - 1) == 0)
			return (&sym_objs[i]);
	if (sym_nobjs == SYM_OBJECTS)
		return (NULL);
	so = &sym_objs[sym_nobjs++];
	so->so_base = base;
	umem_strlcpy(so->so_path, path, sizeof (so->so_path));
	/*
	 * dladdr names the program by its argv[0] (relative to a working
	 * directory that may have changed since), or not at all.
	 */
	if (path[0] == '\0' || strcmp(path, program_invocation_name) == 0)
		path = "/proc/self/exe";
	sym_load(so, path);
	return (so);
}

/* The function of so's .symtab holding pc (so loaded at base), or NULL. */
static const char *
symtab_name(const sym_obj_t *so, uintptr_t pc, uintptr_t base,
    uintptr_t *offp)
{
	uintptr_t rel = pc - base + so->so_vaddr0;

	for (size_t i = 0; so->so_syms != NULL && i < so->so_nsyms; i++) {
		const ElfW(Sym) *s = &so->so_syms[i];
		unsigned type = ELF64_ST_TYPE(s->st_info);

		if ((type != STT_FUNC && type != STT_GNU_IFUNC) ||
		    s->st_shndx == SHN_UNDEF || s->st_size == 0 ||
		    rel - s->st_value >= s->st_size ||
		    s->st_name >= so->so_strsize ||
		    /* a name must end inside the table */
		    memchr(so->so_strs + s->st_name, '\0',
		    so->so_strsize - s->st_name) == NULL)
			continue;
		*offp = rel - s->st_value;
		return (so->so_strs + s->st_name);
	}
	return (NULL);
}

/*
 * The function holding pc and pc's offset in it: from its object's
 * .symtab, else from dladdr (exported symbols only).  *filep: the
 * object's file, NULL if pc is in none; without a name, *offp is pc's
 * offset in the object.  The name stays valid.
 */
const char *
umem_symbol(uintptr_t pc, const char **filep, uintptr_t *offp)
{
	const char *name = NULL;
	sym_obj_t *so;
	Dl_info di;

	*offp = 0;
	if (dladdr((void *)pc, &di) == 0) {
		*filep = NULL;
		return (NULL);
	}
	*filep = di.dli_fname != NULL ? di.dli_fname : "?";
	if (umem_trylock(&sym_lock)) {
		if ((so = sym_obj((uintptr_t)di.dli_fbase, di.dli_fname)) !=
		    NULL)
			name = symtab_name(so, pc, (uintptr_t)di.dli_fbase,
			    offp);
		umem_unlock(&sym_lock);
	}
	if (name == NULL && (name = di.dli_sname) != NULL)
		*offp = pc - (uintptr_t)di.dli_saddr;
	else if (name == NULL)
		*offp = pc - (uintptr_t)di.dli_fbase;
	return (name);
}
